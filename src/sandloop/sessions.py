"""Sessions: a named stretch of work on one task that runs, dialogues and recipes belong to.

Each run in a session can carry a phase label (set by hand, or by the `classify-phase` recipe),
so a snapshot can later select, say, only the debugging of a migration.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import pandas as pd

from sandloop.loops.spec_files import SpecError
from sandloop.storage.store import AkashicStore, NotFound, sql_str

PHASES = ("prepare", "install", "start", "use", "debug", "export")


def check_phase(phase: str) -> str:
    if phase not in PHASES:
        raise SpecError(f"unknown phase {phase!r}; phases are {', '.join(PHASES)}")
    return phase


def start(
    store: AkashicStore, title: str, tags: list[str], metadata: dict[str, Any]
) -> dict[str, Any]:
    row = {
        "id": uuid.uuid4().hex[:12],
        "title": title,
        "tags": orjson.dumps(sorted(set(tags))).decode(),
        "metadata": orjson.dumps(metadata, option=orjson.OPT_SORT_KEYS).decode(),
        "status": "open",
        "started_at": datetime.now(UTC),
        "ended_at": None,
    }
    store.upsert("sessions", [row])
    return row


def find(store: AkashicStore, prefix: str) -> dict[str, Any]:
    frame = store.select("sessions")
    matches = frame[frame["id"].str.startswith(prefix)] if prefix else frame.iloc[0:0]
    if len(matches) != 1:
        what = "no session" if matches.empty else f"{len(matches)} sessions"
        raise NotFound(f"{what} match {prefix!r}; `sandloop session list` shows them")
    row: dict[str, Any] = matches.iloc[0].to_dict()
    return row


def end(store: AkashicStore, prefix: str) -> dict[str, Any]:
    row = find(store, prefix)
    row.update(status="ended", ended_at=datetime.now(UTC))
    store.upsert("sessions", [row])
    return row


def listing(store: AkashicStore) -> pd.DataFrame:
    frame = store.select("sessions")
    if frame.empty:
        return frame
    runs = store.select("runs")
    counts = runs.groupby("session").size() if not runs.empty else pd.Series(dtype=int)
    frame["runs"] = frame["id"].map(counts).fillna(0).astype(int)
    return frame.sort_values("started_at", ascending=False).reset_index(drop=True)


def runs_of(store: AkashicStore, session_id: str) -> pd.DataFrame:
    return store.select("runs", f"session = {sql_str(session_id)}").sort_values("created_at")


def label(store: AkashicStore, thread_prefix: str, phase: str) -> dict[str, Any]:
    run = store.find_run(thread_prefix)
    run["phase"] = check_phase(phase)
    store.put_run(run)
    return run


def describe_run(store: AkashicStore, run: dict[str, Any], max_chars: int = 600) -> str:
    """What a run did, in a few lines, for the classify-phase recipe to read."""
    steps = store.steps(str(run["thread"]))
    outputs = [] if steps.empty else steps.sort_values("step")["output"].astype(str).head(3)
    text = f"{run['kind']} '{run['name']}' on: {run['genesis']}\n" + "\n".join(outputs)
    return text[:max_chars]
