"""A per-thread write-ahead log: every step is durable before it is batched into LanceDB.

LanceDB makes one fragment and one table version per write call (~6 ms each, and searches slow
down until compaction), so writing each step to it would dominate a fast loop. Appending one
fsync'd JSON line costs well under a millisecond; the log is flushed to LanceDB in batches as
keyed upserts and truncated. After a crash the log is replayed (idempotently, by key) the next
time anyone writes that thread, and readers merge pending lines in the meantime, so nothing is
lost and nothing is counted twice. A torn last line (a crash mid-append) is skipped.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import orjson

from sandloop.storage.schema import TIMESTAMP_COLUMNS


class ThreadLocked(RuntimeError):
    """Another process is running this thread right now."""


def _decode(line: bytes) -> dict[str, Any] | None:
    try:
        row: dict[str, Any] = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    for column in TIMESTAMP_COLUMNS & row.keys():
        if isinstance(row[column], str):
            row[column] = datetime.fromisoformat(row[column])
    return row


def read_log(path: Path) -> list[dict[str, Any]]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    rows = (_decode(line) for line in data.splitlines() if line.strip())
    return [row for row in rows if row is not None]


def pending_logs(wal_dir: Path) -> Iterator[Path]:
    if wal_dir.is_dir():
        yield from sorted(wal_dir.glob("*.jsonl"))


class ThreadLog:
    """Exclusive writer of one thread's log; holding it is what 'this run is running' means."""

    def __init__(self, wal_dir: Path, thread: str, wait_s: float = 0.0) -> None:
        """``wait_s``: how long to wait for another writer to let go (a continuation may start
        while the flow run that scheduled it is still closing)."""
        wal_dir.mkdir(parents=True, exist_ok=True)
        self.path = wal_dir / f"{thread}.jsonl"
        self._lock_file = open(wal_dir / f"{thread}.lock", "a+")  # noqa: SIM115 - held open
        give_up = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() < give_up:
                    time.sleep(0.2)
                    continue
                self._lock_file.close()
                raise ThreadLocked(
                    f"thread {thread[:12]} is being run by another process; wait for it or stop it"
                ) from None
        self._log: IO[bytes] = open(self.path, "ab")  # noqa: SIM115 - closed in close()

    def append(self, row: dict[str, Any]) -> None:
        self._log.write(orjson.dumps(row, option=orjson.OPT_NAIVE_UTC) + b"\n")
        self._log.flush()
        os.fsync(self._log.fileno())

    def pending(self) -> list[dict[str, Any]]:
        return read_log(self.path)

    def truncate(self) -> None:
        """Called only after the pending rows are committed to LanceDB."""
        self._log.truncate(0)
        self._log.seek(0)
        os.fsync(self._log.fileno())

    def close(self) -> None:
        """Release the thread (idempotent: a run lets go as soon as its record is written)."""
        if self._log.closed:
            return
        self._log.close()
        if self.path.exists() and self.path.stat().st_size == 0:
            self.path.unlink()
        fcntl.flock(self._lock_file, fcntl.LOCK_UN)
        self._lock_file.close()


def is_locked(wal_dir: Path, thread: str) -> bool:
    """True while some process holds the thread's writer lock (the run is live)."""
    lock_path = wal_dir / f"{thread}.lock"
    if not lock_path.exists():
        return False
    with open(lock_path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False
