"""A sweep's tick makes many threads' rows durable together (one syncfs, or an fsync per log
where there is none): every row is in its own thread's log, readable, and replayed like any."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from _common import invocation_rows
from sandloop.storage import journal, wal
from sandloop.storage.store import AkashicStore

THREADS = [f"{i:02x}" * 16 for i in range(5)]


def test_rows_appended_together_land_in_their_own_logs(home: Path) -> None:
    store = AkashicStore.open(home)
    logs = {t: store.open_thread(t) for t in THREADS}
    rows = {t: invocation_rows(2, t, 10 * i) for i, t in enumerate(THREADS)}  # distinct keys
    journal.append_together([(logs[t], row) for t in THREADS for row in rows[t]])
    for thread in THREADS:
        assert store.journal.read(thread) == rows[thread]
        assert logs[thread].pending() == rows[thread]
    store.flush_all(list(logs.values()))
    assert store.count("invocations") == 10
    assert all(not store.journal.read(t) for t in THREADS)
    for log in logs.values():
        log.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="syncfs(2) is Linux's")
def test_on_linux_one_file_system_sync_stands_for_every_fsync(tmp_path: Path) -> None:
    with open(tmp_path / "x", "wb") as handle:
        assert wal._syncfs(handle.fileno()) is True


def test_without_syncfs_each_log_is_fsynced(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = AkashicStore.open(home)
    logs = {t: store.open_thread(t) for t in THREADS[:3]}
    synced: list[int] = []
    monkeypatch.setattr(wal, "_syncfs", lambda _fd: False)
    monkeypatch.setattr(wal.os, "fsync", synced.append)
    assert all(isinstance(log, wal.ThreadLog) for log in logs.values())
    wal.append_together(
        [(log, row) for t, log in logs.items() for row in invocation_rows(3, t, 0)]  # type: ignore[misc]
    )
    assert sorted(synced) == sorted(log.fileno() for log in logs.values())  # once per log
    for log in logs.values():
        log.close()
