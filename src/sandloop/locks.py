"""The one way sandloop holds a file lock across processes.

An `fcntl.flock` lock belongs to an open file: it is let go when the holder closes the file or
dies, so a killed writer never leaves a stale lock behind (the thread logs rely on that). Every
local lock site uses this module, so that waiting, trying once and asking "is it held?" are
written once.
"""

from __future__ import annotations

import fcntl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

POLL_S = 0.2


class FileLock:
    """An exclusive lock on ``path`` (created empty if missing; never deleted, since deleting a
    lock file another process has open would let a third one lock a new file beside it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: IO[str] | None = None

    @property
    def held(self) -> bool:
        return self._handle is not None

    def acquire(self, wait_s: float | None = None) -> bool:
        """Take the lock. ``wait_s``: None waits as long as it takes, 0 tries once, else gives
        up after that long. False when another process holds it still."""
        if self._handle is not None:
            return True
        handle = open(self.path, "a+")  # noqa: SIM115 - kept open while held, closed in release
        try:
            taken = _take(handle, wait_s)
        except BaseException:
            handle.close()
            raise
        if not taken:
            handle.close()
            return False
        self._handle = handle
        return True

    def release(self) -> None:
        """Let go (idempotent)."""
        handle, self._handle = self._handle, None
        if handle is not None:
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()


def _take(handle: IO[str], wait_s: float | None) -> bool:
    if wait_s is None:
        fcntl.flock(handle, fcntl.LOCK_EX)
        return True
    give_up = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= give_up:
                return False
            time.sleep(POLL_S)


@contextmanager
def try_lock(path: Path) -> Iterator[bool]:
    """Yields True while holding the lock, or False at once when another process holds it (or
    the file cannot be opened): for work that one process doing is enough."""
    lock = FileLock(path)
    try:
        taken = lock.acquire(wait_s=0)
    except OSError:
        taken = False
    try:
        yield taken
    finally:
        lock.release()


def is_locked(path: Path) -> bool:
    """True while some process holds the lock on ``path``. Creates nothing: a missing file is
    a lock nobody holds."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below
    except (FileNotFoundError, PermissionError):
        return False
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False
