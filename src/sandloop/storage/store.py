"""The Akashic store: the one facade over LanceDB tables, the write-ahead log and blobs.

Flows and the CLI talk to this class, never to LanceDB directly; batching, idempotency and
crash recovery are decided here once.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import lancedb
import pandas as pd
import pyarrow as pa

from sandloop.storage.blobs import BlobStore
from sandloop.storage.schema import INVOCATIONS, TABLES
from sandloop.storage.wal import ThreadLog, is_locked, pending_logs, read_log

#: Rows per keyed upsert. Each merge_insert joins its batch against the whole table, so fewer,
#: larger calls win: 10k-row batches ran at 0.67x a bare `add`, one call per 50k rows at 0.81x
#: (benchmarks/bench_record_throughput.py). The cap bounds memory for huge back-fills.
WRITE_BATCH_ROWS = 100_000


class StoreError(RuntimeError):
    """The store cannot be opened or written; the message says what to change."""


class AmbiguousPrefix(StoreError):
    pass


class NotFound(StoreError):
    pass


def sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def dedupe_last(rows: Sequence[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """Keep the last row per key: LanceDB inserts in-batch duplicates twice."""
    latest: dict[Any, dict[str, Any]] = {}
    for row in rows:
        latest[row[key]] = row
    return list(latest.values())


def check_writable(home: Path) -> None:
    """Fail early, with the fix, rather than half-way through a run."""
    try:
        home.mkdir(parents=True, exist_ok=True)
        probe = home / f".write-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or errno.errorcode.get(exc.errno or 0, str(exc))
        raise StoreError(
            f"cannot write to home {str(home)!r}: {reason}; choose another with --home or "
            "SANDLOOP_HOME"
        ) from None


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


def _add_missing_columns(table: Any, schema: pa.Schema) -> None:
    """A store written by an older sandloop lacks newer nullable columns: add them, all null,
    without rewriting the data. Only additions are migrated this way."""
    have = set(table.schema.names)
    missing = [f for f in schema if f.name not in have]
    if missing:
        table.add_columns(pa.schema(missing))


class AkashicStore:
    def __init__(self, home: Path, *, compact_every: int = 100) -> None:
        self.home = home
        self.path = home / "akashic"
        self.wal_dir = self.path / "_wal"
        self.blobs = BlobStore(str(home / "blobs"))
        self.compact_every = compact_every
        # read_consistency_interval=0: a long-lived handle sees other processes' writes.
        self._db = lancedb.connect(str(self.path), read_consistency_interval=timedelta(0))
        self._tables: dict[str, Any] = {}

    @classmethod
    def open(cls, home: Path, *, compact_every: int = 100) -> AkashicStore:
        check_writable(home)
        return cls(home, compact_every=compact_every)

    # -- tables ---------------------------------------------------------------------------

    def table(self, name: str) -> Any:
        table = self._tables.get(name)
        if table is None:
            schema, key = TABLES[name]
            if name in self._db.list_tables().tables:
                table = self._db.open_table(name)
                _add_missing_columns(table, schema)
            else:
                table = self._db.create_table(name, schema=schema, exist_ok=True)
                # Declared key: concurrent merge_inserts of the same keys stay unique.
                table.set_unenforced_primary_key(key)  # type: ignore[attr-defined]
            self._tables[name] = table
        return table

    def upsert(self, name: str, rows: Sequence[dict[str, Any]]) -> int:
        """Keyed upsert in batches of ``WRITE_BATCH_ROWS``; returns the number of rows written."""
        if not rows:
            return 0
        schema, key = TABLES[name]
        unique = dedupe_last(rows, key)
        table = self.table(name)
        for start in range(0, len(unique), WRITE_BATCH_ROWS):
            batch = pa.Table.from_pylist(unique[start : start + WRITE_BATCH_ROWS], schema=schema)
            (
                table.merge_insert(key)
                .when_matched_update_all()
                .when_not_matched_insert_all()
                .execute(batch)
            )
        self._maybe_compact(table)
        return len(unique)

    def _maybe_compact(self, table: Any) -> None:
        """Each commit adds a fragment and reads slow ~10× after a thousand: fold them back.

        Versions younger than LanceDB's default retention are kept; snapshots tag theirs.
        """
        if table.stats()["fragment_stats"]["num_small_fragments"] >= self.compact_every:
            optimize(table)

    def table_at(self, name: str, version: int | str) -> Any:
        """A read-only view of a table at a version number or tag (a snapshot's pin)."""
        table = self._db.open_table(name)
        table.checkout(version)
        return table

    def has_table(self, name: str) -> bool:
        return name in self._tables or name in self._db.list_tables().tables

    def compact(self, cleanup_older_than: timedelta | None = None) -> None:
        for name in TABLES:
            if self.has_table(name):
                optimize(self.table(name), cleanup_older_than)

    # -- invocations ----------------------------------------------------------------------

    def open_thread(self, thread: str, wait_s: float = 0.0) -> ThreadLog:
        """Take the thread's writer lock and replay whatever a crashed writer left behind."""
        log = ThreadLog(self.wal_dir, thread, wait_s)
        self.flush(log)
        return log

    def flush(self, log: ThreadLog) -> int:
        rows = log.pending()
        written = self.upsert("invocations", rows)
        log.truncate()
        return written

    def recover(self) -> int:
        """Replay the logs of crashed writers (those whose lock nobody holds)."""
        recovered = 0
        for path in pending_logs(self.wal_dir):
            thread = path.stem
            if is_locked(self.wal_dir, thread):
                continue
            log = ThreadLog(self.wal_dir, thread)
            try:
                recovered += self.flush(log)
            finally:
                log.close()
        return recovered

    def select(
        self, name: str, where: str | None = None, columns: list[str] | None = None
    ) -> pd.DataFrame:
        """A filtered (SQL ``where``) and projected read of a table as a DataFrame."""
        if not self.has_table(name):
            names = columns or [f.name for f in TABLES[name][0]]
            return pd.DataFrame({c: pd.Series(dtype=object) for c in names})
        frame: pd.DataFrame = scan(self.table(name), where, columns).to_pandas()
        return frame

    def count(self, name: str, where: str | None = None) -> int:
        """Rows matching ``where``, counted by LanceDB without reading them."""
        if not self.has_table(name):
            return 0
        return int(self.table(name).count_rows(where))

    def _select_rows(self, name: str, where: str) -> list[dict[str, Any]]:
        """Rows as plain Python values (None stays None, timestamps are datetimes)."""
        if not self.has_table(name):
            return []
        rows: list[dict[str, Any]] = (
            self.table(name).search().where(where).limit(None).to_arrow().to_pylist()
        )
        return rows

    def steps(self, thread: str) -> pd.DataFrame:
        """Every recorded step of a thread, including ones still in the write-ahead log."""
        stored = self.select("invocations", f"thread = {sql_str(thread)}")
        pending = read_log(self.wal_dir / f"{thread}.jsonl")
        if pending:
            fresh = pa.Table.from_pylist(dedupe_last(pending, "key"), schema=INVOCATIONS)
            stored = stored[~stored["key"].isin(set(fresh.column("key").to_pylist()))]
            frames = [f for f in (stored, fresh.to_pandas()) if not f.empty]
            stored = pd.concat(frames, ignore_index=True) if frames else stored
        return stored.sort_values("step", kind="stable").reset_index(drop=True)

    def invocations(self, where: str | None = None) -> pd.DataFrame:
        return self.select("invocations", where)

    # -- runs -----------------------------------------------------------------------------

    def put_run(self, row: dict[str, Any]) -> None:
        row = {**row, "updated_at": datetime.now(UTC)}
        self.upsert("runs", [row])

    def runs(self) -> pd.DataFrame:
        frame = self.select("runs")
        if frame.empty:
            return frame
        live = [is_locked(self.wal_dir, t) for t in frame["thread"]]
        # A 'running' run whose lock nobody holds was killed: call it what it is.
        frame.loc[
            (frame["status"] == "running") & ~pd.Series(live, index=frame.index), "status"
        ] = "interrupted"
        return frame.sort_values("created_at", ascending=False).reset_index(drop=True)

    def find_run(self, thread_prefix: str) -> dict[str, Any]:
        if not thread_prefix:
            raise NotFound("give a thread id or a prefix of one")
        rows = self._select_rows("runs", f"thread LIKE {sql_str(thread_prefix.lower() + '%')}")
        if not rows:
            raise NotFound(
                f"no run has a thread starting with {thread_prefix!r}; see `sandloop runs`"
            )
        if len(rows) > 1:
            raise AmbiguousPrefix(
                f"{len(rows)} runs have threads starting with {thread_prefix!r}; "
                "give more characters"
            )
        return rows[0]

    def get_run(self, thread: str) -> dict[str, Any] | None:
        rows = self._select_rows("runs", f"thread = {sql_str(thread)}")
        return rows[0] if rows else None

    def table_versions(self) -> dict[str, int]:
        return {name: self.table(name).version for name in TABLES}
