"""Write-ahead-log lines that are JSON but not step records never reach the store: readers skip
them with a warning, the thread's next writer moves them to a quarantine file, and the thread
goes on."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import orjson
import pytest

from _common import invocation_rows
from sandloop.storage.store import AkashicStore
from sandloop.storage.wal import BadLine, decode_row, quarantine_path

THREAD = "ab" * 16

BAD_LINES = [
    b"123",
    b"[1,2,3]",
    b"null",
    b'"text"',
    b'{"x":1}',
    b"{not json",
]


def good_row(step: int) -> dict[str, Any]:
    row: dict[str, Any] = invocation_rows(1, THREAD, step)[0]
    return row


def encoded(row: dict[str, Any]) -> bytes:
    return orjson.dumps(row, option=orjson.OPT_NAIVE_UTC)


def bad_step_rows() -> list[bytes]:
    """Rows shaped like steps whose fields have the wrong types or are missing."""
    row = good_row(9)
    wrong = [
        {**row, "step": "five"},
        {**row, "step": True},
        {**row, "key": None},
        {**row, "latency_ms": "fast"},
        {**row, "started_at": "yesterday"},
        {**row, "step": 2**63},
        {k: v for k, v in row.items() if k != "thread"},
        {**row, "surprise": 1},
    ]
    return [encoded(r) for r in wrong]


def write_log(home: Path, lines: list[bytes]) -> Path:
    wal = home / "akashic" / "_wal"
    wal.mkdir(parents=True, exist_ok=True)
    path = wal / f"{THREAD}.jsonl"
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


@pytest.mark.parametrize("line", BAD_LINES + bad_step_rows())
def test_a_line_that_is_not_a_step_record_is_refused_with_a_reason(line: bytes) -> None:
    with pytest.raises(BadLine):
        decode_row(line)


def test_a_good_line_decodes_with_its_timestamps() -> None:
    row = decode_row(encoded(good_row(3)))
    assert row["step"] == 3 and row["started_at"].tzinfo is not None


def test_readers_skip_bad_lines_and_the_next_writer_quarantines_them(
    home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = AkashicStore.open(home)
    bad = BAD_LINES + bad_step_rows()
    lines = [encoded(good_row(0)), *bad[:7], encoded(good_row(1)), *bad[7:]]
    path = write_log(home, lines)

    with caplog.at_level(logging.WARNING, logger="sandloop.store"):
        steps = store.steps(THREAD)
    assert list(steps["step"]) == [0, 1]
    assert "not step records" in caplog.text and quarantine_path(path).name in caplog.text
    assert path.read_bytes().count(b"\n") == len(lines)  # a reader changes nothing

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="sandloop.store"):
        log = store.open_thread(THREAD)  # what a resume does first
    log.close()
    assert str(quarantine_path(path)) in caplog.text
    assert quarantine_path(path).read_bytes().splitlines() == bad
    assert not path.exists() or path.read_bytes() == b""
    assert sorted(store.invocations()["step"]) == [0, 1]
    assert list(store.steps(THREAD)["step"]) == [0, 1]


def test_a_torn_last_line_is_skipped_not_quarantined(home: Path) -> None:
    store = AkashicStore.open(home)
    path = write_log(home, [encoded(good_row(0))])
    with open(path, "ab") as handle:
        handle.write(encoded(good_row(1))[:40])  # a crash mid-append
    assert list(store.steps(THREAD)["step"]) == [0]
    store.open_thread(THREAD).close()
    assert not quarantine_path(path).exists()
    assert list(store.steps(THREAD)["step"]) == [0]
