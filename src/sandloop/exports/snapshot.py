"""Snapshots: a named selection of runs, pinned to the table versions it was taken at.

Each pinned version is tagged in LanceDB (`sandloop-snapshot-<name>`), so compaction keeps it
readable and an export of the snapshot reads exactly the rows it selected, however the store
has changed since.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
import pandas as pd
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from sandloop.scoring import FILTER_COLUMNS, Passing, passing
from sandloop.storage.lance_io import scan
from sandloop.storage.schema import SCORES
from sandloop.storage.store import AkashicStore, StoreError, sql_str

PINNED_TABLES = ("runs", "invocations", "messages", "embeddings", "scores")
SCORE_COLUMNS = ["id", "kind", "key", "other_key", "thread", "score", "by"]  # what filters read
Kind = Literal["network", "dialogue", "recipe"]


class SnapshotError(StoreError):
    """A snapshot that does not exist, already exists, selects nothing, or lost its versions."""


JUDGE_PHASE = "judge"  # a judge's verdict runs (`sandloop judge`)
MODERATION_PHASE = "moderation"  # a gallery's moderation of a visitor's prompt
#: Runs that grade other runs: their prompts and verdicts teach a model to judge, not to
#: answer, so a snapshot leaves them out unless it asks for them.
JUDGING_PHASES = (JUDGE_PHASE, MODERATION_PHASE)


class Selection(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    realm: str | None = Field(None, description="realm prefix")
    thread: str | None = Field(None, description="thread prefix")
    session: str | None = Field(None, description="session id prefix")
    kind: list[Kind] = Field(default_factory=list, description="network, dialogue, recipe")
    phase: list[str] = Field(default_factory=list)
    since: datetime | None = None
    until: datetime | None = None
    status: list[str] = Field(default_factory=lambda: ["completed"])
    min_score: float | None = Field(
        None, ge=1, le=5, description="only outputs whose mean score (1-5) is at least this"
    )
    rated_by: str | None = Field(
        None, description="only this source's scores count: a user, judge:RECIPE@V, critic:MODEL"
    )
    include_judges: bool = Field(
        False,
        description="also the runs of judges and moderation (left out by default: they grade "
        "outputs, and are not examples of them)",
    )

    @property
    def scored(self) -> bool:
        return self.min_score is not None or self.rated_by is not None

    def passing(self, scores: pd.DataFrame | pa.Table) -> Passing | None:
        """What the score filter keeps, or None when there is no filter."""
        return passing(scores, self.min_score, self.rated_by) if self.scored else None

    def apply(self, runs: pd.DataFrame) -> pd.DataFrame:
        keep = pd.Series(True, index=runs.index)
        for column in ("realm", "thread", "session"):
            prefix = getattr(self, column)
            if prefix:
                keep &= runs[column].fillna("").astype(str).str.startswith(prefix)
        if self.kind:
            keep &= runs["kind"].isin(self.kind)
        if self.phase:
            keep &= runs["phase"].isin(self.phase)
        if not self.include_judges:  # unless asked for by name, as a phase
            keep &= ~runs["phase"].isin([p for p in JUDGING_PHASES if p not in self.phase])
        if self.status:
            keep &= runs["status"].isin(self.status)
        created = pd.to_datetime(runs["created_at"], utc=True)
        if self.since is not None:
            keep &= created >= _utc(self.since)
        if self.until is not None:
            keep &= created < _utc(self.until)
        return runs[keep].sort_values("thread").reset_index(drop=True)


def _utc(moment: datetime) -> pd.Timestamp:
    stamp = pd.Timestamp(moment)
    return stamp.tz_convert("UTC") if stamp.tzinfo else stamp.tz_localize("UTC")


def tag_for(name: str) -> str:
    return f"sandloop-snapshot-{name}"


#: Snapshot names become LanceDB tag names and folder names in exports: keep them plain.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def check_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise SnapshotError(
            f"snapshot name {name[:40]!r}{'…' if len(name) > 40 else ''}: use 1–100 letters, "
            "digits, '.', '_' or '-', starting with a letter or digit"
        )
    return name


def create(store: AkashicStore, name: str, selection: Selection) -> dict[str, Any]:
    check_name(name)
    if get(store, name, missing_ok=True) is not None:
        raise SnapshotError(f"a snapshot named {name!r} exists; pick another name")
    store.recover()  # crashed runs' logs first: a snapshot sees everything that was recorded
    runs = selection.apply(store.select("runs"))
    if selection.scored:  # only runs with an output that passes the score filter
        scores = scan(store.table("scores"), "score IS NOT NULL", FILTER_COLUMNS).to_arrow()
        kept = selection.passing(scores)
        assert kept is not None
        runs = runs[runs["thread"].isin(kept.threads)]
    if runs.empty:
        raise SnapshotError(f"the selection {_describe(selection)} matches no runs")
    versions: dict[str, int] = {}
    for table_name in PINNED_TABLES:
        table = store.table(table_name)
        versions[table_name] = int(table.version)
        table.tags.create(tag_for(name), table.version)
    row = {
        "name": name,
        "created_at": datetime.now(UTC),
        "selection": selection.model_dump_json(),
        "versions": orjson.dumps(versions, option=orjson.OPT_SORT_KEYS).decode(),
        "threads": len(runs),
    }
    store.upsert("snapshots", [row])
    return row


def get(store: AkashicStore, name: str, missing_ok: bool = False) -> dict[str, Any] | None:
    rows = store.select("snapshots", f"name = {sql_str(name)}")
    if rows.empty:
        if missing_ok:
            return None
        known = ", ".join(sorted(store.select("snapshots")["name"])) or "none yet"
        raise SnapshotError(f"no snapshot {name!r} (snapshots: {known})")
    row: dict[str, Any] = rows.iloc[0].to_dict()
    return row


def listing(store: AkashicStore) -> pd.DataFrame:
    return store.select("snapshots").sort_values("created_at", ascending=False)


def delete(store: AkashicStore, name: str) -> None:
    """Forget a snapshot and untag its versions, so compaction may clean them."""
    get(store, name)
    for table_name in PINNED_TABLES:
        table = store.table(table_name)
        if tag_for(name) in table.tags.list():
            table.tags.delete(tag_for(name))
    store.table("snapshots").delete(f"name = {sql_str(name)}")


class Pinned:
    """The store's tables as they were when the snapshot was taken."""

    def __init__(self, store: AkashicStore, snapshot: dict[str, Any]) -> None:
        self.store, self.snapshot = store, snapshot
        self.name = str(snapshot["name"])
        self.selection = Selection.model_validate_json(snapshot["selection"])
        self.versions: dict[str, int] = orjson.loads(snapshot["versions"])
        self._tables: dict[str, Any] = {}
        self._passing: Passing | None = None

    def table(self, name: str) -> Any:
        if name not in self._tables:
            try:  # LanceDB raises several types for a missing version
                table = self.store.table_at(name, tag_for(self.name))
            except Exception:
                try:
                    table = self.store.table_at(name, self.versions[name])
                except Exception:
                    raise SnapshotError(
                        f"snapshot {self.name!r}: version {self.versions[name]} of {name} is gone "
                        "(its tag was removed and the store compacted); take a new snapshot"
                    ) from None
            self._tables[name] = table
        return self._tables[name]

    def read(
        self, name: str, where: str | None = None, columns: list[str] | None = None
    ) -> pd.DataFrame:
        frame: pd.DataFrame = scan(self.table(name), where, columns).to_pandas()
        return frame

    def read_arrow(
        self, name: str, where: str | None = None, columns: list[str] | None = None
    ) -> Any:
        return scan(self.table(name), where, columns).to_arrow()

    def count(self, name: str, where: str | None = None) -> int:
        return int(self.table(name).count_rows(where))

    def scores(self, where: str | None = None) -> pa.Table:
        """The pinned judgements (none for a snapshot taken before scores were recorded).
        Read when asked, not kept: a fully rated store holds a row per step."""
        if "scores" not in self.versions:
            return SCORES.empty_table().select(SCORE_COLUMNS)
        table: pa.Table = self.read_arrow("scores", where, SCORE_COLUMNS)
        return table

    def passing(self) -> pa.Array | None:
        """The keys the selection's score filter keeps, or None (worked out once, with the
        threads they belong to)."""
        kept = self._passed()
        return None if kept is None else kept.keys

    def _passed(self) -> Passing | None:
        if self._passing is None and self.selection.scored and "scores" in self.versions:
            scores = self.read_arrow("scores", "score IS NOT NULL", FILTER_COLUMNS)
            self._passing = self.selection.passing(scores)
            del scores
            # The grouping's hash tables are freed but kept by Arrow's allocator, a fifth of a
            # GiB at a million scores that the export's own reads could not reuse.
            pa.default_memory_pool().release_unused()
        elif self._passing is None and self.selection.scored:
            self._passing = self.selection.passing(self.scores())
        return self._passing

    def runs(self) -> pd.DataFrame:
        runs = self.selection.apply(self.read("runs"))
        kept = self._passed()
        if kept is not None:
            runs = runs[runs["thread"].isin(kept.threads)]
        return runs.reset_index(drop=True)


def _describe(selection: Selection) -> str:
    given = selection.model_dump(exclude_defaults=True)
    return orjson.dumps(given, default=str).decode() if given else "(everything completed)"
