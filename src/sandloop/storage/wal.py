"""A per-thread write-ahead log: every step is durable before it is batched into LanceDB.

LanceDB makes one fragment and one table version per write call (~6 ms each, and searches slow
down until compaction), so writing each step to it would dominate a fast loop. Appending one
fsync'd JSON line costs well under a millisecond; the log is flushed to LanceDB in batches as
keyed upserts and truncated. After a crash the log is replayed (idempotently, by key) the next
time anyone writes that thread, and readers merge pending lines in the meantime, so nothing is
lost and nothing is counted twice. A torn last line (a crash mid-append) is skipped.

A line that is JSON but not a step record (a hand edit, another program) is never fed to the
store: readers skip it with a warning, and the thread's next writer moves it aside to
``<thread>.jsonl.quarantine`` so the thread can go on.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import orjson
import pyarrow as pa

from sandloop.errors import SandloopError
from sandloop.locks import FileLock
from sandloop.locks import is_locked as is_file_locked
from sandloop.storage.schema import INVOCATIONS

log = logging.getLogger("sandloop.store")

# What each Arrow type of the invocations schema accepts from JSON.
_ACCEPTS: dict[str, tuple[type, ...]] = {"string": (str,), "int64": (int,), "double": (int, float)}
_REQUIRED = frozenset(f.name for f in INVOCATIONS if not f.nullable)
_COLUMNS = {f.name: f.type for f in INVOCATIONS}


class ThreadLocked(SandloopError, RuntimeError):
    """Another process is running this thread right now."""


def locked_message(thread: str) -> str:
    return f"thread {thread[:12]} is being run by another process; wait for it or stop it"


class BadLine(ValueError):
    """A log line that is not a step record."""


def _check_value(name: str, value: Any) -> Any:
    arrow_type = _COLUMNS[name]
    if value is None:
        if name in _REQUIRED:
            raise BadLine(f"{name} is null")
        return None
    if pa.types.is_timestamp(arrow_type):
        if not isinstance(value, str):
            raise BadLine(f"{name} is not a timestamp")
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            raise BadLine(f"{name} is not a timestamp") from None
    accepted = _ACCEPTS.get(str(arrow_type), ())
    if isinstance(value, bool) or not isinstance(value, accepted):
        raise BadLine(f"{name} is {type(value).__name__}, not {arrow_type}")
    if isinstance(value, int) and not -(2**63) <= value < 2**63:
        raise BadLine(f"{name} is out of range")
    return value


def decode_row(line: bytes) -> dict[str, Any]:
    """One log line as a row of the invocations schema, or BadLine saying why not."""
    try:
        row = orjson.loads(line)
    except orjson.JSONDecodeError:
        raise BadLine("not JSON") from None
    if not isinstance(row, dict):
        raise BadLine(f"a JSON {type(row).__name__}, not a step record")
    unknown = row.keys() - _COLUMNS.keys()
    if unknown:
        raise BadLine(f"unknown fields {sorted(unknown)[:3]}")
    missing = _REQUIRED - row.keys()
    if missing:
        raise BadLine(f"missing {sorted(missing)[:3]}")
    return {name: _check_value(name, value) for name, value in row.items()}


@dataclass
class LogContents:
    rows: list[dict[str, Any]] = field(default_factory=list)
    bad: list[tuple[bytes, str]] = field(default_factory=list)  # (line, why)


def read_log_checked(path: Path) -> LogContents:
    """Valid rows and bad complete lines; a torn last line (no newline: a crash mid-append, or
    a write in progress) is neither: it was never durable."""
    contents = LogContents()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return contents
    lines = data.split(b"\n")
    lines.pop()  # after the last newline: empty, or a line still being written
    for line in lines:
        if not line.strip():
            continue
        try:
            contents.rows.append(decode_row(line))
        except BadLine as exc:
            contents.bad.append((line, str(exc)))
    return contents


def quarantine_path(path: Path) -> Path:
    return path.with_name(path.name + ".quarantine")


def read_log(path: Path) -> list[dict[str, Any]]:
    """The log's step records, for readers; bad lines are skipped with a warning."""
    contents = read_log_checked(path)
    if contents.bad:
        log.warning(
            "%s: skipped %d line(s) that are not step records (%s); the thread's next run "
            "moves them to %s",
            path,
            len(contents.bad),
            contents.bad[0][1],
            quarantine_path(path).name,
        )
    return contents.rows


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
        self._lock = FileLock(wal_dir / f"{thread}.lock")
        if not self._lock.acquire(wait_s=wait_s):
            raise ThreadLocked(locked_message(thread))
        self._log: IO[bytes] = open(self.path, "ab")  # noqa: SIM115 - closed in close()

    def append(self, row: dict[str, Any]) -> None:
        self.write(row)
        os.fsync(self._log.fileno())

    def write(self, row: dict[str, Any]) -> None:
        """Hand a line to the kernel, not yet durable: `append_together` makes many durable at
        once."""
        self._log.write(orjson.dumps(row, option=orjson.OPT_NAIVE_UTC) + b"\n")
        self._log.flush()

    def fileno(self) -> int:
        return self._log.fileno()

    def pending(self) -> list[dict[str, Any]]:
        """The rows to commit; bad lines are moved to the quarantine file first (the log is
        truncated after the commit), so a damaged log never stops the thread."""
        contents = read_log_checked(self.path)
        if contents.bad:
            target = quarantine_path(self.path)
            with open(target, "ab") as handle:
                handle.write(b"".join(line + b"\n" for line, _ in contents.bad))
                handle.flush()
                os.fsync(handle.fileno())
            log.warning(
                "%s: moved %d line(s) that are not step records (%s) to %s",
                self.path,
                len(contents.bad),
                contents.bad[0][1],
                target,
            )
        return contents.rows

    def check(self) -> None:
        """An fcntl lock is held until this process lets go or dies: nothing to check."""

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
        self._lock.release()


def is_locked(wal_dir: Path, thread: str) -> bool:
    """True while some process holds the thread's writer lock (the run is live)."""
    return is_file_locked(wal_dir / f"{thread}.lock")


def append_together(entries: Sequence[tuple[ThreadLog, dict[str, Any]]]) -> None:
    """Many threads' rows made durable together (a sweep's tick): each line written, then one
    `syncfs` of the file system the logs share, where Linux has it, instead of an fsync per
    line; elsewhere each log is fsync'd once. Nothing is durable until this returns, exactly as
    with one `append` after another."""
    for log_, row in entries:
        log_.write(row)
    if not entries:
        return
    if not _syncfs(entries[0][0].fileno()):
        for log_ in dict.fromkeys(log_ for log_, _ in entries):
            os.fsync(log_.fileno())


def _syncfs(fd: int) -> bool:
    """syncfs(2): flush every file of one file system (errors included since Linux 5.8)."""
    syncfs = _libc_syncfs()
    if syncfs is None:
        return False
    if syncfs(fd) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))
    return True


@functools.cache
def _libc_syncfs() -> Any:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.syncfs
    except (OSError, AttributeError):
        return None
