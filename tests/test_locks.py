"""The one file-lock helper, across real processes: one holder at a time, a give-up time, and a
lock that dies with its holder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sandloop.locks import FileLock, is_locked, try_lock

HOLD = """
import sys, time
from pathlib import Path
from sandloop.locks import FileLock
lock = FileLock(Path(sys.argv[1]))
lock.acquire()
print("held", flush=True)
time.sleep(60)
"""


def holder(path: Path) -> subprocess.Popen[str]:
    """Another process holding the lock on ``path`` until it is killed."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_lock_held_by_another_process_is_refused_then_freed_by_its_death(tmp_path: Path) -> None:
    path = tmp_path / "one.lock"
    assert not is_locked(path) and not path.exists()  # asking creates nothing
    other = holder(path)
    try:
        assert is_locked(path)
        assert FileLock(path).acquire(wait_s=0.5) is False
        with try_lock(path) as taken:
            assert taken is False
    finally:
        other.kill()
        other.wait()
    assert not is_locked(path)  # the kill let go: no stale lock
    lock = FileLock(path)
    assert lock.acquire(wait_s=0) and lock.held
    assert lock.acquire(wait_s=0)  # taking a held lock again is a no-op
    lock.release()
    lock.release()  # idempotent
    assert not lock.held and not is_locked(path) and path.exists()


def test_a_blocking_lock_waits_for_the_holder(tmp_path: Path) -> None:
    path = tmp_path / "wait.lock"
    other = holder(path)
    killing = tmp_path / "killing"
    subprocess.Popen(["sh", "-c", f"sleep 0.5; touch {killing}; kill {other.pid}"])
    with FileLock(path) as lock:
        assert killing.exists()  # taken only once the holder was being killed
        assert lock.held and is_locked(path)  # another open of the file sees it held
    other.wait()
    assert not is_locked(path)
    with try_lock(path) as taken:
        assert taken is True
