"""The Akashic store: the one facade over LanceDB tables, the write-ahead log and blobs.

Flows and the CLI talk to this class, never to LanceDB directly; batching, idempotency and
crash recovery are decided here once.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import lancedb
import pandas as pd
import pyarrow as pa

from sandloop.config import Settings
from sandloop.scrub import scrub
from sandloop.storage.blobs import BlobStore
from sandloop.storage.errors import StoreError as StoreError
from sandloop.storage.journal import Journal, LocalJournal, WriterLog
from sandloop.storage.lance_io import (
    add_missing_columns,
    creation_lock,
    is_commit_conflict,
    is_missing_data,
    lance_message,
    maintenance_lock,
    optimize,
    retry_conflicts,
    scan,
    to_frame,
)
from sandloop.storage.location import Location, LocationError, parse
from sandloop.storage.schema import INVOCATIONS, TABLES
from sandloop.storage.wal import ThreadLocked

log = logging.getLogger("sandloop.store")

#: Rows per keyed upsert. Each merge_insert joins its batch against the whole table, so fewer,
#: larger calls win: 10k-row batches ran at 0.67x a bare `add`, one call per 50k rows at 0.81x
#: (benchmarks/bench_record_throughput.py). The cap bounds memory for huge back-fills.
WRITE_BATCH_ROWS = 100_000


class AmbiguousPrefix(StoreError):
    pass


class NotFound(StoreError):
    pass


class DamagedStore(StoreError):
    """The tables disagree with the runs they record, or a data file is gone: reading on would
    show holes and resuming would silently recompute recorded steps."""


def damaged(home: Path | str, what: str) -> DamagedStore:
    return DamagedStore(
        f"the store in {str(home)!r} is damaged: {what}; run `sandloop doctor --home {home}` to "
        "see what is wrong and repair what can be repaired"
    )


def sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def dedupe_last(rows: Sequence[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """Keep the last row per key: LanceDB inserts in-batch duplicates twice."""
    latest: dict[Any, dict[str, Any]] = {}
    for row in rows:
        latest[row[key]] = row
    return list(latest.values())


def check_writable(home: Path) -> None:
    """Fail early, with the fix, rather than half-way through a run. The probe file is unique
    (not per process): a run's background threads check the same home at once."""
    try:
        home.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(prefix=".write-probe-", dir=home)
        os.close(handle)
        os.unlink(probe)
    except OSError as exc:
        reason = exc.strerror or errno.errorcode.get(exc.errno or 0, str(exc))
        raise StoreError(
            f"cannot write to home {str(home)!r}: {reason}; choose another with --home or "
            "SANDLOOP_HOME"
        ) from None


def _location(home: Path | str | Location) -> Location:
    if isinstance(home, Location):
        return home
    try:
        return parse(home)
    except LocationError as exc:
        raise StoreError(str(exc)) from None


#: LanceDB's caches, per store handle. Its defaults (1 GB of metadata, 6 GB of index data) are
#: for big analytical tables; a long writer here (a sweep commits thousands of versions) should
#: not hold up to a gigabyte of old manifests. The store keeps no Lance indexes (vectors are
#: searched by FAISS or Elasticsearch), and the manifests worth caching are the latest few.
METADATA_CACHE_BYTES = 64 * 2**20
INDEX_CACHE_BYTES = 64 * 2**20


class AkashicStore:
    def __init__(
        self,
        home: Path | str | Location,
        *,
        compact_every: int = 100,
        readonly: bool = False,
        lease_s: float = 30.0,
    ) -> None:
        """``readonly``: for commands that only read. Nothing is created (not even the home),
        nothing is migrated or replayed, and a store on a read-only disk can be read.

        ``home`` is a folder or a URL on object storage (``s3://bucket/prefix``); ``lease_s``
        is how long a remote thread's writer holds it without renewing (a dead one's expiry)."""
        self.location = _location(home)
        self.remote = self.location.remote
        self.home: Path | str = self.location.url if self.remote else self.location.local
        #: The local folder of the store (None on object storage).
        self.local: Path | None = None if self.remote else self.location.local / "akashic"
        self.url = self.location.child("akashic")
        self.blobs = BlobStore(self.location.child("blobs"), **self.location.fsspec_options())
        self.compact_every = compact_every
        self.readonly = readonly
        self.lease_s = lease_s
        #: This machine's folder for indexes and caches of the store (the home when local).
        self.cache: Path = self.location.cache_dir() if self.remote else self.location.local
        self._journal: Journal | None = None
        self._connection: Any = None
        self._tables: dict[str, Any] = {}

    @classmethod
    def for_settings(cls, settings: Settings, *, readonly: bool = False) -> AkashicStore:
        """The store of a home as its settings describe it (options, lease, local cache)."""
        store = cls.open(
            settings.location,
            compact_every=settings.compact_every,
            readonly=readonly,
            lease_s=settings.lease_s,
        )
        store.cache = settings.local_dir
        return store

    @property
    def path(self) -> Path:
        """The store's folder, for what only a local store has (lock files, the doctor)."""
        if self.local is None:
            raise StoreError(f"the store in {self.home} is on object storage, not in a folder")
        return self.local

    @property
    def wal_dir(self) -> Path:
        return self.path / "_wal"

    @property
    def journal(self) -> Journal:
        if self._journal is None:
            if self.remote:
                from sandloop.storage.object_log import ObjectJournal

                self._journal = ObjectJournal(self.location, self.lease_s)
            else:
                self._journal = LocalJournal(self.wal_dir)
        return self._journal

    @classmethod
    def open(
        cls,
        home: Path | str | Location,
        *,
        compact_every: int = 100,
        readonly: bool = False,
        lease_s: float = 30.0,
    ) -> AkashicStore:
        location = _location(home)
        if location.remote:
            from sandloop.storage.object_log import probe, reach

            # Reachable, and for writers, writable with conditional puts honoured.
            reach(location) if readonly else probe(location)
        elif not readonly:
            check_writable(location.local)
        return cls(location, compact_every=compact_every, readonly=readonly, lease_s=lease_s)

    @property
    def _db(self) -> Any:
        if self._connection is None:
            # read_consistency_interval=0: a long-lived handle sees other processes' writes.
            self._connection = lancedb.connect(
                self.url,
                read_consistency_interval=timedelta(0),
                storage_options=self.location.options or None,
                session=lancedb.Session(
                    index_cache_size_bytes=INDEX_CACHE_BYTES,
                    metadata_cache_size_bytes=METADATA_CACHE_BYTES,
                ),
            )
        return self._connection

    @contextmanager
    def _creating(self) -> Iterator[None]:
        """Locally, tables are opened and created under a lock (see creation_lock). On object
        storage a table's creation is one conditional put: of two creators, one wins and the
        other opens what it made."""
        if self.local is None:
            yield
        else:
            with creation_lock(self.local):
                yield

    @contextmanager
    def _maintaining(self) -> Iterator[bool]:
        """One compactor per home: a lock file locally, a lease on object storage."""
        if self.local is not None:
            with maintenance_lock(self.local) as mine:
                yield mine
            return
        try:
            holder = self.journal.open("_maintenance")
        except ThreadLocked:
            yield False
            return
        try:
            yield True
        finally:
            holder.close()

    # -- tables ---------------------------------------------------------------------------

    def _table_names(self) -> list[str]:
        if self.readonly and self.local is not None and not self.local.is_dir():
            return []  # connecting would create the folder
        names: list[str] = self._db.list_tables().tables
        return names

    def table(self, name: str) -> Any:
        table = self._tables.get(name)
        if table is not None:
            return table
        try:
            return self._table(name)
        except (RuntimeError, OSError, ValueError) as exc:
            self._unreachable(exc)
            raise

    def _table(self, name: str) -> Any:
        schema, key = TABLES[name]
        if self.readonly:
            if name not in self._table_names():
                raise NotFound(f"the store in {str(self.home)!r} has no {name} yet")
            table = self._open_table(name)
        else:
            # Under the creation lock, a folder without a manifest is a crash's leftover, never
            # a table another process is making at this moment.
            with self._creating():
                self._discard_uncommitted(name)
                if name in self._table_names():
                    table = self._open_table(name)
                    add_missing_columns(table, schema)
                else:
                    table = self._create_table(name, schema, key)
        self._tables[name] = table
        return table

    def _open_table(self, name: str) -> Any:
        try:
            return self._db.open_table(name)
        except Exception as exc:
            if is_missing_data(exc):
                raise damaged(self.home, f"table {name} cannot be opened") from None
            raise

    def _discard_uncommitted(self, name: str) -> None:
        """A table folder without a committed version is what a crash (a full disk) during
        creation leaves: it holds nothing, and LanceDB would call the table missing forever."""
        if self.local is None:
            return
        folder = self.local / f"{name}.lance"
        if not folder.is_dir() or any((folder / "_versions").glob("*.manifest")):
            return
        # Nothing refers to what it holds; it is moved aside, not deleted, in case a person
        # wants to look at it.
        aside = folder.with_name(f"{folder.name}.uncommitted-{int(time.time())}")
        folder.rename(aside)
        log.warning("moved %s aside to %s: a table whose creation never committed", folder, aside)

    def _create_table(self, name: str, schema: pa.Schema, key: str) -> Any:
        try:
            table = self._db.create_table(name, schema=schema, exist_ok=True)
        except (RuntimeError, OSError, ValueError) as exc:
            if "already exists" not in str(exc).lower():
                raise
            table = self._db.open_table(name)  # another machine created it since we looked
        # Declared key: concurrent merge_inserts of the same keys stay unique.
        retry_conflicts(lambda: table.set_unenforced_primary_key(key))
        return table

    def upsert(self, name: str, rows: Sequence[dict[str, Any]]) -> int:
        """Keyed upsert in batches of ``WRITE_BATCH_ROWS``; returns the number of rows written.
        A commit that races another writer is retried: keyed, it converges to the same rows."""
        if not rows:
            return 0
        schema, key = TABLES[name]
        unique = dedupe_last(rows, key)
        table = self.table(name)

        def merge(batch: pa.Table) -> Any:
            return (
                table.merge_insert(key)
                .when_matched_update_all()
                .when_not_matched_insert_all()
                .execute(batch)
            )

        for start in range(0, len(unique), WRITE_BATCH_ROWS):
            batch = pa.Table.from_pylist(unique[start : start + WRITE_BATCH_ROWS], schema=schema)
            try:
                retry_conflicts(functools.partial(merge, batch))
            except (RuntimeError, OSError, ValueError) as exc:
                self._unreachable(exc)
                if is_missing_data(exc):  # the merge reads the table: it cannot be trusted
                    raise damaged(self.home, f"table {name}: {lance_message(exc)}") from None
                raise
        self._maybe_compact(table)
        return len(unique)

    def _maybe_compact(self, table: Any) -> None:
        """Each commit adds a fragment and reads slow ~10× after a thousand: fold them back.

        Versions younger than LanceDB's default retention are kept; snapshots tag theirs.
        Compaction is maintenance: one process at a time does it, and a failure of it is a
        warning, never a failed write (the rows are committed already).
        """
        try:
            if table.stats()["fragment_stats"]["num_small_fragments"] < self.compact_every:
                return
            with self._maintaining() as mine:
                if mine:
                    retry_conflicts(functools.partial(optimize, table), attempts=3)
        except Exception as exc:
            # Writers preempting a compaction is routine: the next flush tries again.
            level = logging.INFO if is_commit_conflict(exc) else logging.WARNING
            log.log(level, "compaction of %s skipped: %s", table.name, str(exc).splitlines()[0])

    def _unreachable(self, exc: BaseException) -> None:
        """Raise StoreUnavailable for a remote store that stopped answering (one line)."""
        if self.remote:
            from sandloop.storage.object_log import is_unreachable, unavailable

            if is_unreachable(exc):
                raise unavailable(exc, self.location.url) from None

    def table_at(self, name: str, version: int | str) -> Any:
        """A read-only view of a table at a version number or tag (a snapshot's pin)."""
        table = self._db.open_table(name)
        table.checkout(version)
        return table

    def has_table(self, name: str) -> bool:
        return name in self._tables or name in self._table_names()

    def compact(self, cleanup_older_than: timedelta | None = None) -> None:
        with self._maintaining() as mine:
            if not mine:
                log.warning("another process is compacting %s; skipped", self.home)
                return
            for name in TABLES:
                if self.has_table(name):
                    optimize(self.table(name), cleanup_older_than)

    # -- invocations ----------------------------------------------------------------------

    def open_thread(self, thread: str, wait_s: float = 0.0) -> WriterLog:
        """Take the thread's writer lock (a lease on object storage) and replay whatever a
        crashed writer left behind."""
        log = self.journal.open(thread, wait_s)
        try:
            self.flush(log)
        except BaseException:
            log.close()
            raise
        return log

    def flush(self, log: WriterLog) -> int:
        rows = log.pending()
        log.check()  # a writer that lost its lease never commits (fencing)
        written = self.upsert("invocations", rows)
        log.truncate()
        return written

    def flush_all(self, logs: Sequence[WriterLog]) -> int:
        """Many threads' logs in one upsert (a sweep's window): one table version, not one per
        thread. Each log is truncated only after the commit."""
        rows: list[dict[str, Any]] = []
        for log in logs:
            rows.extend(log.pending())
            log.check()
        written = self.upsert("invocations", rows) if rows else 0
        for log in logs:
            log.truncate()
        return written

    def recover(self) -> int:
        """Replay the logs of crashed writers (those whose lock nobody holds)."""
        if self.readonly:
            return 0
        recovered = 0
        for thread in self.journal.abandoned():
            try:
                log = self.journal.open(thread)
            except ThreadLocked:
                continue  # a writer took it since we looked
            try:
                recovered += self.flush(log)
            finally:
                log.close()
        return recovered

    def _scan(self, name: str, where: str | None, columns: list[str] | None) -> pa.Table:
        try:
            result: pa.Table = scan(self.table(name), where, columns).to_arrow()
        except DamagedStore:
            raise
        except Exception as exc:
            self._unreachable(exc)
            if is_missing_data(exc):
                raise damaged(self.home, f"table {name}: {lance_message(exc)}") from None
            raise
        return result

    def select(
        self, name: str, where: str | None = None, columns: list[str] | None = None
    ) -> pd.DataFrame:
        """A filtered (SQL ``where``) and projected read of a table as a DataFrame."""
        wanted = columns or [f.name for f in TABLES[name][0]]
        if not self.has_table(name):
            return pd.DataFrame({c: pd.Series(dtype=object) for c in wanted})
        frame = to_frame(self._scan(name, where, columns))
        for column in wanted:  # a read-only view of an older store is not migrated
            if column not in frame.columns:
                frame[column] = None
        return frame

    def count(self, name: str, where: str | None = None) -> int:
        """Rows matching ``where``, counted by LanceDB without reading them."""
        if not self.has_table(name):
            return 0
        return int(self.table(name).count_rows(where))

    def rows(self, name: str, where: str | None = None) -> list[dict[str, Any]]:
        """Rows as plain Python values (None stays None, timestamps are datetimes), for code
        that writes them back."""
        if not self.has_table(name):
            return []
        rows: list[dict[str, Any]] = self._scan(name, where, None).to_pylist()
        return rows

    def steps(self, thread: str, after: int | None = None) -> pd.DataFrame:
        """Every recorded step of a thread (or those past step ``after``), including ones still
        in the write-ahead log.

        The log is read before the table: a flush moves rows from the log into the table, never
        the other way, so a flush landing between the two reads can only add rows. A reader of a
        live run sees a prefix of the thread that never shrinks and has no holes.
        """
        pending = self.journal.read(thread)
        where = f"thread = {sql_str(thread)}"
        if after is not None:
            where += f" AND step > {int(after)}"
            pending = [row for row in pending if row["step"] > after]
        stored = self.select("invocations", where)
        if pending:
            fresh = pa.Table.from_pylist(dedupe_last(pending, "key"), schema=INVOCATIONS)
            stored = stored[~stored["key"].isin(set(fresh.column("key").to_pylist()))]
            frames = [f for f in (stored, to_frame(fresh)) if not f.empty]
            stored = pd.concat(frames, ignore_index=True) if frames else stored
        return stored.sort_values("step", kind="stable").reset_index(drop=True)

    def has_output(self, thread: str, output: str) -> bool:
        """Whether a step of ``thread`` (journal included) put out ``output``, without reading
        the thread's steps: a blob permalink asks this once per image."""
        if any(row.get("output") == output for row in self.journal.read(thread)):
            return True
        where = f"thread = {sql_str(thread)} AND output = {sql_str(output)}"
        return self.count("invocations", where) > 0

    def steps_of(self, threads: Sequence[str]) -> dict[str, pd.DataFrame]:
        """`steps` of many threads with one table read (those without any get an empty
        frame)."""
        together = self.steps_together(threads)
        found = {str(t): f for t, f in together.groupby("thread", sort=False)}
        empty = together.iloc[0:0]
        return {t: found.get(t, empty).reset_index(drop=True) for t in threads}

    def steps_together(
        self, threads: Sequence[str], columns: list[str] | None = None
    ) -> pd.DataFrame:
        """The steps of many threads (journal included) as one frame, ordered by thread and
        step; only ``columns`` (with ``thread``, ``step`` and ``key``) when given. For readers
        of many threads: a frame per thread costs per thread and per column."""
        if columns is not None:
            columns = list(dict.fromkeys(["thread", "step", "key", *columns]))
        if not threads:
            return self.select("invocations", "false", columns)
        where = f"thread IN ({', '.join(sql_str(t) for t in threads)})"
        stored = self.select("invocations", where, columns)
        pending = [row for t in threads for row in self.journal.read(t)]
        if pending:
            fresh = pa.Table.from_pylist(dedupe_last(pending, "key"), schema=INVOCATIONS)
            stored = stored[~stored["key"].isin(set(fresh.column("key").to_pylist()))]
            fresh_frame = to_frame(fresh if columns is None else fresh.select(columns))
            frames = [f for f in (stored, fresh_frame) if not f.empty]
            stored = pd.concat(frames, ignore_index=True) if frames else stored
        return stored.sort_values(["thread", "step"], kind="stable").reset_index(drop=True)

    def runs_of(self, threads: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The `runs` rows of many threads, by thread, with one read."""
        if not threads:
            return {}
        where = f"thread IN ({', '.join(sql_str(t) for t in threads)})"
        return {str(row["thread"]): row for row in self.rows("runs", where)}

    def put_runs(self, rows: Sequence[dict[str, Any]]) -> None:
        now = datetime.now(UTC)
        self.upsert(
            "runs",
            [
                {
                    **row,
                    "updated_at": now,
                    "error": scrub(row["error"]) if row.get("error") else None,
                }
                for row in rows
            ],
        )

    def check_recorded(self, run: dict[str, Any], steps: pd.DataFrame, after: int = -1) -> None:
        """Refuse to read on (or resume) a run whose record has lost steps it once had: the
        `runs` row counts them, the tables must hold them (those past ``after``, for a read
        from a cursor)."""
        claimed = int(run.get("steps") or 0)
        if run.get("kind") != "network" or claimed == 0:
            return
        ok = set(steps.loc[steps["status"] == "ok", "step"].astype(int))
        missing = [n for n in range(after + 1, claimed) if n not in ok]
        if missing:
            shown = ", ".join(map(str, missing[:5])) + (" …" if len(missing) > 5 else "")
            raise damaged(
                self.home,
                f"run {str(run['thread'])[:12]} recorded {claimed} steps, but {len(missing)} of "
                f"them are missing from the store (steps {shown})",
            )

    def invocations(self, where: str | None = None) -> pd.DataFrame:
        return self.select("invocations", where)

    # -- runs -----------------------------------------------------------------------------

    def put_run(self, row: dict[str, Any]) -> None:
        error = row.get("error")
        row = {**row, "updated_at": datetime.now(UTC), "error": scrub(error) if error else error}
        self.upsert("runs", [row])

    def runs(self) -> pd.DataFrame:
        frame = self.select("runs")
        if frame.empty:
            return frame
        # A 'running' run whose lock nobody holds was killed: call it what it is. (Only those
        # are asked: on object storage each question is a request.)
        running = frame.index[frame["status"] == "running"]
        dead = [i for i in running if not self.is_live(str(frame.at[i, "thread"]))]
        frame.loc[dead, "status"] = "interrupted"
        # An unfinished network run counts its steps only when it ends: count what it recorded.
        unfinished = frame["status"].isin(["running", "interrupted", "registered"]) & (
            frame["kind"] == "network"
        )
        for index in frame.index[unfinished]:
            recorded = self.recorded_steps(str(frame.at[index, "thread"]))
            frame.at[index, "steps"] = max(int(frame.at[index, "steps"] or 0), recorded)
        return frame.sort_values("created_at", ascending=False).reset_index(drop=True)

    def is_live(self, thread: str) -> bool:
        """Whether some process (on any machine, for a remote home) is writing the thread."""
        return self.journal.is_live(thread)

    def recorded_steps(self, thread: str) -> int:
        """How many steps of a network thread are recorded in a row from step 0 (what a resume
        would start after)."""
        steps = self.steps(thread)
        ok = set(steps.loc[steps["status"] == "ok", "step"].astype(int))
        count = 0
        while count in ok:
            count += 1
        return count

    def runs_by_prefix(self, thread_prefix: str) -> list[dict[str, Any]] | None:
        """The runs rows whose thread starts with ``thread_prefix``, or None when it cannot
        start one (empty, or not hexadecimal), so that no such text reaches a query."""
        prefix = thread_prefix.lower()
        if not prefix or not all(c in "0123456789abcdef" for c in prefix):
            return None
        return self.rows("runs", f"thread LIKE {sql_str(prefix + '%')}")

    def find_run(self, thread_prefix: str) -> dict[str, Any]:
        rows = self.runs_by_prefix(thread_prefix)
        if rows is None:
            if not thread_prefix:
                raise NotFound("give a thread id or a prefix of one")
            raise NotFound(f"{thread_prefix[:40]!r} is not a thread id: they are hexadecimal")
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
        rows = self.rows("runs", f"thread = {sql_str(thread)}")
        return rows[0] if rows else None

    def table_versions(self) -> dict[str, int]:
        return {name: self.table(name).version for name in TABLES}
