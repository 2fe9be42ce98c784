"""The store under a careless hand: concurrent writers and readers, damaged or half-made tables,
read-only disks, and the reads that must never create anything."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from _common import invocation_rows
from sandloop.storage.lance_io import to_frame
from sandloop.storage.store import (
    AkashicStore,
    DamagedStore,
    NotFound,
    check_writable,
)
from tests.store_rows import run_row as shared_run_row
from tests.store_rows import tree

THREAD = "cd" * 16


def run_row(thread: str = THREAD, **fields: Any) -> dict[str, Any]:
    return shared_run_row(thread, **{"genesis": "hello", **fields})


def test_missing_strings_read_back_as_none(home: Path) -> None:
    store = AkashicStore.open(home)
    store.put_run(run_row())  # no stop reason yet
    frame = store.runs()
    assert frame.loc[0, "stop_reason"] is None and frame.loc[0, "error"] is None
    assert (frame.loc[0, "stop_reason"] or "") == ""
    assert store.get_run(THREAD)["stop_reason"] is None  # type: ignore[index]


def test_to_frame_keeps_present_strings() -> None:
    import pyarrow as pa

    frame = to_frame(pa.table({"s": pa.array(["a", None]), "n": pa.array([1, 2])}))
    assert frame["s"].tolist() == ["a", None] and frame["n"].tolist() == [1, 2]


def test_unfinished_runs_count_the_steps_they_recorded(home: Path) -> None:
    store = AkashicStore.open(home)
    store.put_run(run_row())
    store.upsert("invocations", invocation_rows(7, THREAD))
    log = store.open_thread(THREAD)
    for row in invocation_rows(3, THREAD, offset=7):
        log.append(row)
    log.close()  # keeps the unflushed lines: a killed writer
    (only,) = store.runs().to_dict("records")
    assert only["status"] == "interrupted" and only["steps"] == 10


def test_write_probes_from_many_threads_never_collide(home: Path) -> None:
    failures: list[BaseException] = []

    def probe() -> None:
        for _ in range(300):
            try:
                check_writable(home)
            except BaseException as exc:
                failures.append(exc)

    workers = [threading.Thread(target=probe) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert failures == []
    assert not [p for p in home.iterdir() if p.name.startswith(".write-probe")]


def test_a_reader_of_a_live_thread_sees_a_growing_prefix_without_holes(home: Path) -> None:
    """The writer flushes every 4 steps, as `SANDLOOP_FLUSH_EVERY=4` does; every read in
    between must be steps 0..n-1 with n never smaller than the read before."""
    writer = AkashicStore.open(home)
    reader = AkashicStore.open(home)
    total = 160
    done = threading.Event()
    failures: list[BaseException] = []

    def write() -> None:
        try:
            log = writer.open_thread(THREAD)
            for row in invocation_rows(total, THREAD):
                log.append(row)
                if (row["step"] + 1) % 4 == 0:
                    writer.flush(log)
            writer.flush(log)
            log.close()
        except BaseException as exc:
            failures.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=write)
    thread.start()
    seen: list[int] = []
    deadline = time.monotonic() + 120
    while not done.is_set() or not seen or seen[-1] < total:
        assert not failures and time.monotonic() < deadline, (failures, seen[-1:])
        steps = list(reader.steps(THREAD)["step"])
        assert steps == list(range(len(steps))), f"a hole: {steps}"
        assert not seen or len(steps) >= seen[-1], f"shrank from {seen[-1]} to {len(steps)}"
        seen.append(len(steps))
    thread.join()
    assert not failures, failures
    assert seen[-1] == total and len(set(seen)) > 3  # the reads really overlapped the writes


def _write_concurrently(home: str, thread: str, rows: int) -> None:
    store = AkashicStore.open(Path(home), compact_every=10)
    log = store.open_thread(thread)
    for row in invocation_rows(rows, thread):
        log.append({**row, "key": thread[:8] + row["key"][8:]})
        if (row["step"] + 1) % 4 == 0:
            store.flush(log)
    store.flush(log)
    log.close()


def test_concurrent_writers_with_frequent_compaction_all_finish(home: Path) -> None:
    """Three processes, each flushing every 4 rows with compaction every 10 fragments: commit
    conflicts are retried and compaction never kills a writer."""
    AkashicStore.open(home).upsert("invocations", invocation_rows(1, "0" * 32))
    threads = [f"{i}" * 32 for i in range(1, 4)]
    context = multiprocessing.get_context("spawn")
    procs = [context.Process(target=_write_concurrently, args=(str(home), t, 120)) for t in threads]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=300)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    store = AkashicStore.open(home)
    for thread in threads:
        assert list(store.steps(thread)["step"]) == list(range(120))
    assert store.count("invocations") == 361


def test_a_table_whose_creation_never_committed_is_made_again(home: Path) -> None:
    """What a full disk during the first write leaves: the table's folder, no manifest."""
    AkashicStore.open(home)
    half = home / "akashic" / "runs.lance"
    (half / "data").mkdir(parents=True)
    (half / "data" / "partial.lance").write_bytes(b"\0" * 100)
    (half / "_versions").mkdir()
    store = AkashicStore.open(home)
    store.put_run(run_row())
    assert store.get_run(THREAD) is not None
    assert AkashicStore.open(home).runs()["thread"].tolist() == [THREAD]
    (aside,) = (home / "akashic").glob("runs.lance.uncommitted-*")
    assert (aside / "data" / "partial.lance").is_file()  # moved aside, never deleted


def test_lost_steps_are_reported_never_silently_recomputed(home: Path) -> None:
    store = AkashicStore.open(home)
    store.put_run(run_row(status="completed", steps=50))
    rows = invocation_rows(50, THREAD)
    store.upsert("invocations", rows[:30] + rows[40:])
    run = store.get_run(THREAD)
    assert run is not None
    with pytest.raises(DamagedStore, match=r"10 of them are missing.*sandloop doctor"):
        store.check_recorded(run, store.steps(THREAD))
    store.upsert("invocations", rows[30:40])
    store.check_recorded(run, store.steps(THREAD))


@pytest.mark.parametrize("damage", ["delete", "truncate", "overwrite"])
def test_a_damaged_data_file_is_one_line_naming_the_doctor(home: Path, damage: str) -> None:
    store = AkashicStore.open(home)
    store.upsert("invocations", invocation_rows(20, THREAD))
    for data_file in (home / "akashic" / "invocations.lance" / "data").iterdir():
        if damage == "delete":
            data_file.unlink()
            continue
        with open(data_file, "r+b") as handle:
            if damage == "truncate":
                handle.truncate(data_file.stat().st_size // 2)
            else:
                handle.seek(0)
                handle.write(b"\0" * data_file.stat().st_size)
    with pytest.raises(DamagedStore, match="sandloop doctor"):
        AkashicStore.open(home).steps(THREAD)


def test_reads_create_nothing(tmp_path: Path) -> None:
    home = tmp_path / "nowhere"
    store = AkashicStore.open(home, readonly=True)
    assert store.runs().empty and store.steps(THREAD).empty
    with pytest.raises(NotFound):
        store.find_run("ab")
    assert not home.exists()


def test_a_populated_store_is_read_without_writing(home: Path) -> None:
    store = AkashicStore.open(home)
    store.put_run(run_row(status="completed", steps=5))
    store.upsert("invocations", invocation_rows(5, THREAD))
    before = tree(home)
    reader = AkashicStore.open(home, readonly=True)
    assert reader.runs()["steps"].tolist() == [5]
    assert len(reader.steps(THREAD)) == 5
    assert tree(home) == before


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None, reason="needs root for a bind mount"
)
def test_a_store_on_a_read_only_disk_can_be_read(home: Path) -> None:
    """`runs`, `show` and `search` on a read-only bind mount of the home (the FAISS index is a
    cache: with none on disk, search builds it in memory)."""
    from sandloop.config import Settings
    from sandloop.embedding.embedders import embedder_from
    from sandloop.embedding.service import embed_and_index

    store = AkashicStore.open(home)
    store.put_run(run_row(status="completed", steps=5))
    store.upsert("invocations", invocation_rows(5, THREAD))
    settings = Settings.for_home(home).model_copy(update={"embed_model": "hashing"})
    embed_and_index(store, embedder_from(settings), settings=settings)
    shutil.rmtree(home / "indexes")
    commands = " && ".join(
        f"{sys.executable} -m sandloop.cli {args}"
        for args in ("runs --json", "show cd --json", "search lantern --json")
    )
    done = subprocess.run(
        [
            "unshare",
            "-m",
            "sh",
            "-c",
            'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && touch "$1/x" 2>/dev/null'
            f" && exit 9; {commands}",
            "sh",
            str(home),
        ],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "SANDLOOP_HOME": str(home), "SANDLOOP_EMBED_MODEL": "hashing"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count(THREAD) >= 3 and "lantern" in done.stdout
    assert not (home / "indexes").exists()


def test_a_resume_of_a_damaged_table_is_one_line_naming_the_doctor(home: Path) -> None:
    """A resume writes first (it commits the thread's log): the merge reads the damaged table."""
    store = AkashicStore.open(home)
    store.upsert("invocations", invocation_rows(20, THREAD))
    log = store.open_thread(THREAD)
    log.append(invocation_rows(1, THREAD, offset=20)[0])
    log.close()
    for data_file in (home / "akashic" / "invocations.lance" / "data").iterdir():
        with open(data_file, "r+b") as handle:
            handle.truncate(data_file.stat().st_size // 2)
    with pytest.raises(DamagedStore, match=r"sandloop doctor") as refused:
        AkashicStore.open(home).open_thread(THREAD)
    assert ".rs:" not in str(refused.value)
    assert (home / "akashic" / "_wal" / f"{THREAD}.jsonl").stat().st_size > 0  # kept


def test_a_full_disk_is_not_mistaken_for_damage() -> None:
    from sandloop.storage.lance_io import is_missing_data

    full = "lance error: LanceError(IO): Generic LocalFileSystem error: No space left on device"
    assert not is_missing_data(RuntimeError(full))
    assert is_missing_data(RuntimeError("lance error: LanceError(IO): failed to fill whole buffer"))
    assert not is_missing_data(RuntimeError("lance error: Invalid user input: no column x"))
