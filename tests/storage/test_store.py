from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from _common import invocation_rows
from sandloop.storage.store import (
    AkashicStore,
    AmbiguousPrefix,
    NotFound,
    StoreError,
    check_writable,
)
from sandloop.storage.wal import ThreadLocked, ThreadLog


def row(key: str, thread: str = "t" * 32, step: int = 0, output: str = "out") -> dict[str, Any]:
    return {**invocation_rows(1, thread, step)[0], "key": key, "output": output}


def test_upserts_are_idempotent_and_dedupe_within_a_batch(home: Path) -> None:
    store = AkashicStore.open(home)
    assert store.upsert("invocations", [row("a"), row("b"), row("a", output="later")]) == 2
    store.upsert("invocations", [row("a", output="again"), row("c")])
    frame = store.invocations()
    assert sorted(frame["key"]) == ["a", "b", "c"]
    assert frame.set_index("key").loc["a", "output"] == "again"


def test_pending_log_rows_are_visible_and_replayed_after_a_crash(home: Path) -> None:
    store = AkashicStore.open(home)
    thread = "f" * 32
    log = store.open_thread(thread)
    log.append(row("k0", thread, 0))
    log.append(row("k1", thread, 1))
    # A crash: the process dies without flushing. Simulate by dropping the writer.
    log.close()
    assert list(store.steps(thread)["key"]) == ["k0", "k1"]  # readers see the log
    assert store.invocations().empty  # not yet in LanceDB
    reopened = AkashicStore.open(home)
    log = reopened.open_thread(thread)  # the next writer replays the log
    log.close()
    assert sorted(reopened.invocations()["key"]) == ["k0", "k1"]
    assert not (reopened.wal_dir / f"{thread}.jsonl").exists()


def test_a_torn_last_line_is_skipped(home: Path) -> None:
    store = AkashicStore.open(home)
    thread = "e" * 32
    log = store.open_thread(thread)
    log.append(row("k0", thread, 0))
    log.close()
    with open(store.wal_dir / f"{thread}.jsonl", "ab") as handle:
        handle.write(b'{"key": "k1", "thre')
    assert store.recover() == 1
    assert list(store.invocations()["key"]) == ["k0"]


def test_one_writer_per_thread(home: Path) -> None:
    store = AkashicStore.open(home)
    log = store.open_thread("d" * 32)
    with pytest.raises(ThreadLocked, match="another process"):
        ThreadLog(store.wal_dir, "d" * 32)
    log.close()
    ThreadLog(store.wal_dir, "d" * 32).close()


def test_a_writer_may_wait_for_the_lock(home: Path) -> None:
    """A continuation that starts while its predecessor is still closing waits its turn."""
    store = AkashicStore.open(home)
    first = store.open_thread("e" * 32)
    releaser = threading.Timer(0.5, first.close)
    releaser.start()
    second = store.open_thread("e" * 32, wait_s=30)
    assert not first._lock.held  # the lock was had only once the first writer let go
    releaser.join()
    second.close()


def test_runs_by_prefix(home: Path) -> None:
    store = AkashicStore.open(home)
    base = {
        "realm": "r",
        "kind": "network",
        "name": "n",
        "spec": "{}",
        "genesis": "g",
        "seed": 1,
        "status": "completed",
        "stop_reason": "max_steps",
        "loop_length": None,
        "steps": 3,
        "error": None,
        "created_at": datetime.now(UTC),
        "flow_run_id": None,
    }
    store.put_run({**base, "thread": "abc1" + "0" * 28})
    store.put_run({**base, "thread": "abc2" + "0" * 28})
    assert store.find_run("abc1")["thread"].startswith("abc1")
    with pytest.raises(AmbiguousPrefix, match="2 runs"):
        store.find_run("abc")
    with pytest.raises(NotFound, match="sandloop runs"):
        store.find_run("ffff")
    assert len(store.runs()) == 2


def test_a_running_run_without_a_live_writer_is_interrupted(home: Path) -> None:
    store = AkashicStore.open(home)
    thread = "c" * 32
    store.put_run(
        {
            "thread": thread,
            "realm": "r",
            "kind": "network",
            "name": "n",
            "spec": "{}",
            "genesis": "g",
            "seed": None,
            "status": "running",
            "stop_reason": None,
            "loop_length": None,
            "steps": 0,
            "error": None,
            "created_at": datetime.now(UTC),
            "flow_run_id": None,
        }
    )
    log = store.open_thread(thread)
    assert store.runs()["status"].tolist() == ["running"]
    log.close()
    assert store.runs()["status"].tolist() == ["interrupted"]


def test_compaction_folds_small_commits(home: Path) -> None:
    store = AkashicStore.open(home, compact_every=5)
    for i in range(6):
        store.upsert("invocations", [row(f"k{i}", step=i)])
    stats = store.table("invocations").stats()["fragment_stats"]
    assert stats["num_fragments"] < 5
    assert len(store.invocations()) == 6


def test_unwritable_home_is_one_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(StoreError, match=r"cannot write to home .*--home or SANDLOOP_HOME"):
        check_writable(blocker / "home")


def test_blobs_are_content_addressed(home: Path) -> None:
    store = AkashicStore.open(home)
    first = store.blobs.put(b"picture")
    assert store.blobs.put(b"picture") == first
    assert store.blobs.get(first) == b"picture"
    assert store.blobs.path(first).endswith(f"blobs/{first[:2]}/{first}")
    second = store.blobs.put(b"another")
    assert store.blobs.get_many([second, "f" * 32, first]) == [b"another", None, b"picture"]


def test_a_store_from_before_sessions_gains_the_new_columns(tmp_path: Path) -> None:
    import lancedb
    import pyarrow as pa

    from sandloop.storage.schema import RUNS

    old_schema = pa.schema([f for f in RUNS if f.name not in ("session", "phase")])
    old = lancedb.connect(str(tmp_path / "akashic"))
    row = {f.name: None for f in old_schema} | {
        "thread": "t1",
        "realm": "r",
        "kind": "network",
        "name": "n",
        "spec": "{}",
        "status": "completed",
        "steps": 3,
    }
    old.create_table("runs", data=pa.Table.from_pylist([row], schema=old_schema))
    store = AkashicStore.open(tmp_path)
    run = store.get_run("t1")
    assert run is not None and run["steps"] == 3 and run["session"] is None
    store.put_run({**run, "session": "s1", "phase": "debug"})
    assert store.get_run("t1")["phase"] == "debug"  # type: ignore[index]


def test_compaction_with_a_tagged_old_version_still_works(tmp_path: Path) -> None:
    """LanceDB refuses a cleanup that would reach a tagged version; ours then cleans only what
    is older than the tag, and the tagged version stays readable."""
    store = AkashicStore.open(tmp_path)
    store.upsert("invocations", invocation_rows(3))
    table = store.table("invocations")
    table.tags.create("pinned", table.version)
    pinned_version = table.version
    for offset in (3, 6):
        store.upsert("invocations", invocation_rows(3, offset=offset))
    store.compact(cleanup_older_than=timedelta(0))  # would fail on a tagged old version
    assert pinned_version in [v["version"] for v in table.list_versions()]
    reader = store._db.open_table("invocations")
    reader.checkout("pinned")
    assert reader.count_rows() == 3 and store.count("invocations") == 9
