"""What the store asks of LanceDB, and how it copes with what LanceDB does under load.

Reads that return every row, compaction that respects snapshot tags, commits retried after a
conflict with another writer, one compactor per home, migrations by added columns, and reads in
which a missing string is None. The store (``store.AkashicStore``) decides when; this says how.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
import pyarrow as pa

from sandloop.locks import FileLock, try_lock

T = TypeVar("T")


#: How often a commit that lost a race with another writer is tried again (LanceDB calls such
#: conflicts retryable: the other commit changed nothing this one depends on).
COMMIT_ATTEMPTS = 8


def is_commit_conflict(exc: BaseException) -> bool:
    """LanceDB's retryable conflicts, and its giving up on them after its own retries
    ("Too many concurrent writers"): many writers on a slow object store reach that."""
    text = str(exc).lower()
    return "retryable commit conflict" in text or "too many concurrent writers" in text


def retry_conflicts(action: Callable[[], T], attempts: int = COMMIT_ATTEMPTS) -> T:
    """Run a keyed (so idempotent) commit, again after a retryable conflict, with jittered
    exponential backoff: concurrent writers of one home converge instead of crashing."""
    for attempt in range(attempts):
        try:
            return action()
        except (RuntimeError, OSError) as exc:
            if not is_commit_conflict(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.02 * 2**attempt * (0.5 + random.random()))
    raise AssertionError("unreachable")


def to_frame(table: pa.Table) -> pd.DataFrame:
    """A DataFrame in which a missing string is None, as it is in Arrow.

    pandas 3 reads nullable strings as NaN, which is truthy: ``row.stop_reason or ""`` would keep
    it. Every reader of the store goes through here, so ``is None`` and ``or`` mean what they say.
    """
    with_nulls = [
        f.name
        for f in table.schema
        if (pa.types.is_string(f.type) or pa.types.is_large_string(f.type))
        and table.column(f.name).null_count
    ]
    if not with_nulls:
        return table.to_pandas()
    # Only these become Python objects, converted by Arrow (4x faster than through pandas).
    frame: pd.DataFrame = table.drop_columns(with_nulls).to_pandas()
    for name in with_nulls:
        values = table.column(name).to_numpy(zero_copy_only=False)
        frame[name] = pd.Series(values, index=frame.index, dtype=object)
    return frame[table.column_names]


#: How LanceDB says a file it needs is gone, cut short or garbled.
_DAMAGE_SIGNS = (
    "not found",
    "no such file",
    "does not exist",
    "object at",
    "lanceerror(io)",
    "failed to fill whole buffer",
    "corrupt",
    "not appear to be a lance file",
)


def is_missing_data(exc: BaseException) -> bool:
    """A read failed because a data file or manifest is missing or damaged (not because the
    query was wrong)."""
    text = str(exc).lower()
    if "no space left on device" in text:
        return False  # a write that failed: nothing it had committed is damaged
    return any(sign in text for sign in _DAMAGE_SIGNS)


def lance_message(exc: BaseException) -> str:
    """LanceDB's error, for a person: its first line, without the Rust source locations."""
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return re.sub(r",? /\S+\.rs:\d+:\d+", "", first)


def scan(table: Any, where: str | None = None, columns: list[str] | None = None) -> Any:
    """A LanceDB query for every row matching ``where`` (LanceDB's default limit is 10)."""
    query = table.search()
    if where:
        query = query.where(where)
    if columns:
        query = query.select(columns)
    return query.limit(None)


def optimize(table: Any, cleanup_older_than: timedelta | None = None) -> None:
    """Compact, and remove old versions except those a snapshot tagged.

    LanceDB refuses to clean up when a tagged version is older than the cut-off; then the cut-off
    moves back to just before the oldest tagged version, so untagged older ones still go."""
    try:
        table.optimize(cleanup_older_than=cleanup_older_than)
    except RuntimeError as exc:
        if "tagged version" not in str(exc):
            raise
        tagged = {int(t["version"]) for t in table.tags.list().values()}
        made = {int(v["version"]): v["timestamp"] for v in table.list_versions()}
        oldest = min(made[v] for v in tagged if v in made)
        age = datetime.now(UTC) - oldest.astimezone(UTC) + timedelta(seconds=1)  # naive: local
        table.optimize(cleanup_older_than=age)


@contextmanager
def maintenance_lock(path: Path) -> Iterator[bool]:
    """One compactor per home at a time: yields False (do nothing) when another process holds it.
    Compactions of one table by several writers at once only preempt each other."""
    with try_lock(path / "_maintenance.lock") as taken:
        yield taken


@contextmanager
def creation_lock(path: Path) -> Iterator[None]:
    """Held while a process opens or creates a table: creating one is two commits (the table,
    then its key), and a folder caught between them must not look like a crash's leftover."""
    path.mkdir(parents=True, exist_ok=True)
    with FileLock(path / "_create.lock"):
        yield


def add_missing_columns(table: Any, schema: pa.Schema) -> None:
    """A store written by an older sandloop lacks newer nullable columns: add them, all null,
    without rewriting the data. Only additions are migrated this way."""
    have = set(table.schema.names)
    missing = [f for f in schema if f.name not in have]
    if missing:
        table.add_columns(pa.schema(missing))
