"""The write-ahead journal of a store, whatever it lives on: one writer per thread, steps durable
before they are folded into LanceDB in batches, and pending steps visible to readers.

A local home keeps it as fsync'd JSON lines under `fcntl` locks (``wal.py``): a lock dies with
its process at once. A remote home keeps it as objects under leases (``object_log.py``), which
every machine sees and a dead worker loses after their expiry.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from sandloop.storage import wal


class WriterLog(Protocol):
    """One thread's log, held exclusively by its writer."""

    def append(self, row: dict[str, Any]) -> None: ...

    def pending(self) -> list[dict[str, Any]]: ...

    def check(self) -> None:
        """Raise ThreadLocked if this writer may no longer commit (its lease was lost)."""

    def truncate(self) -> None: ...

    def close(self) -> None: ...


def append_together(entries: Sequence[tuple[WriterLog, dict[str, Any]]]) -> None:
    """Rows of many threads, all durable when this returns: local logs share one file-system
    sync; others (objects, each put durable on its own) are appended one by one."""
    local = [(log, row) for log, row in entries if isinstance(log, wal.ThreadLog)]
    for log, row in entries:
        if not isinstance(log, wal.ThreadLog):
            log.append(row)
    wal.append_together(local)


class Journal(Protocol):
    def open(self, thread: str, wait_s: float = 0.0) -> WriterLog: ...

    def read(self, thread: str) -> list[dict[str, Any]]:
        """A thread's pending steps, for readers (bad records skipped with a warning)."""

    def is_live(self, thread: str) -> bool: ...

    def abandoned(self) -> list[str]:
        """Threads whose pending steps no live writer holds (a crash's leftovers)."""


class LocalJournal:
    def __init__(self, wal_dir: Path) -> None:
        self.wal_dir = wal_dir

    def open(self, thread: str, wait_s: float = 0.0) -> wal.ThreadLog:
        return wal.ThreadLog(self.wal_dir, thread, wait_s)

    def read(self, thread: str) -> list[dict[str, Any]]:
        return wal.read_log(self.wal_dir / f"{thread}.jsonl")

    def is_live(self, thread: str) -> bool:
        return wal.is_locked(self.wal_dir, thread)

    def abandoned(self) -> list[str]:
        return [
            path.stem
            for path in wal.pending_logs(self.wal_dir)
            if not wal.is_locked(self.wal_dir, path.stem)
        ]
