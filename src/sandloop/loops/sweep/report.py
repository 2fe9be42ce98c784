"""What a sweep came to: its threads as a table, per network × genesis how they ended, and
their trajectories through embedding space.

Read from the store only; a sweep is rebuilt from its spec (its members are deterministic), so
nothing about a thread is kept twice. Vectors come from the `embeddings` table; outputs that
have none yet are embedded (and recorded) on the way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import islice
from typing import Any

import numpy as np
import pandas as pd

from sandloop.config import Settings
from sandloop.embedding.embedders import Embedder
from sandloop.embedding.service import embed_missing
from sandloop.loops.sweep.spec import Member, SweepSpec
from sandloop.loops.sweep.trajectories import (
    DEFAULT_CONVERGE_ABOVE,
    Tally,
    ThreadSteps,
    Trajectories,
)
from sandloop.storage.store import AkashicStore, sql_str

THREAD_COLUMNS = [
    "thread",
    "network",
    "genesis",
    "seed",
    "status",
    "stop_reason",
    "steps",
    "loop_length",
]

#: Threads whose runs rows are read at once.
CHUNK = 1000
#: What the trajectories read of each step (embedding a missing vector needs the address).
STEP_COLUMNS = ["status", "output_type", "output", "realm", "model"]


def threads_of(store: AkashicStore, sweep: SweepSpec) -> pd.DataFrame:
    """One row per thread, in the sweep's order; a thread never started is ``registered``."""
    rows: list[dict[str, Any]] = []
    members = sweep.members()
    while chunk := list(islice(members, CHUNK)):
        runs = store.runs_of([m.thread for m in chunk])
        for member in chunk:
            run = runs.get(member.thread) or {}
            rows.append(
                {
                    "thread": member.thread,
                    "network": member.spec.network.name,
                    "genesis": member.spec.genesis,
                    "seed": member.spec.seed,
                    "status": run.get("status") or "registered",
                    "stop_reason": run.get("stop_reason"),
                    "steps": int(run.get("steps") or 0),
                    "loop_length": run.get("loop_length"),
                }
            )
    return pd.DataFrame(rows, columns=THREAD_COLUMNS)


def summarise(threads: pd.DataFrame) -> pd.DataFrame:
    """Per network × genesis: how many threads, how each ended (reason: count), steps (mean and
    max), and the loop lengths found (median, and how many threads fell into one)."""
    rows = []
    for (network, genesis), group in threads.groupby(["network", "genesis"], sort=False):
        reasons = group["stop_reason"].fillna(group["status"]).value_counts()
        loops = pd.to_numeric(group["loop_length"], errors="coerce").dropna()
        rows.append(
            {
                "network": network,
                "genesis": genesis,
                "threads": len(group),
                "stop_reasons": ", ".join(f"{r} {n}" for r, n in reasons.items()),
                "steps_mean": round(float(group["steps"].mean()), 1),
                "steps_max": int(group["steps"].max()),
                "looped": len(loops),
                "loop_length_median": float(loops.median()) if len(loops) else None,
            }
        )
    return pd.DataFrame(rows)


def trajectories_of(
    store: AkashicStore,
    sweep: SweepSpec,
    embedder: Embedder,
    *,
    embed: bool = True,
    clusters: int | None = None,
    converge_above: float | None = None,
    settings: Settings | None = None,
    on_chunk: Callable[[int, int], None] = lambda _threads, _embedded: None,
) -> Trajectories:
    """Drift, loops, convergence and clusters of a sweep's threads, a chunk at a time.

    Convergence is judged at ``converge_above`` (default: the sweep's own stop rule, else
    0.95) over the stop rule's window. With ``embed``, outputs without a vector are embedded
    first (texts, or images for an image embedder); without it they are left out of drift and
    convergence.
    """
    tally = Tally(
        embedder.name,
        converge_above=converge_above or sweep.stop.converge_above or DEFAULT_CONVERGE_ABOVE,
        converge_window=sweep.stop.converge_window,
    )
    genesis_vectors: dict[str, np.ndarray[Any, Any]] = {}
    embedded = 0
    members = sweep.members()
    while chunk := list(islice(members, CHUNK)):
        threads = [m.thread for m in chunk]
        steps = store.steps_together(threads, STEP_COLUMNS)
        if embed and not steps.empty:
            embedded += embed_missing(store, embedder, steps, settings=settings).embedded
        vectors = _vectors_of(store, embedder.name, threads)
        fresh = sorted({m.spec.genesis for m in chunk} - genesis_vectors.keys())
        if fresh:
            genesis_vectors.update(zip(fresh, embedder.embed(fresh), strict=True))
        rows_of = _rows_by_thread(steps)
        for member in chunk:
            rows = rows_of.get(member.thread)
            if rows:
                tally.add(_thread_steps(member, rows, vectors, genesis_vectors))
        on_chunk(len(chunk), embedded)
    return tally.result(clusters, embedded=embedded)


Row = tuple[int, str, str, str]  # step, output type, key, output


def _rows_by_thread(steps: pd.DataFrame) -> dict[str, list[Row]]:
    """Each thread's successful steps in order, as plain tuples: a thread has tens of rows,
    where pandas' cost per call would dominate."""
    by_thread: dict[str, list[Row]] = {}
    for thread, step, status, kind, key, output in zip(
        steps["thread"].tolist(),
        steps["step"].tolist(),
        steps["status"].tolist(),
        steps["output_type"].tolist(),
        steps["key"].tolist(),
        steps["output"].tolist(),
        strict=True,
    ):
        if status == "ok":
            by_thread.setdefault(thread, []).append((int(step), str(kind), key, str(output)))
    return by_thread


def _vectors_of(
    store: AkashicStore, embedding_model: str, threads: Sequence[str]
) -> dict[str, np.ndarray[Any, Any]]:
    where = (
        f"embedding_model = {sql_str(embedding_model)} AND "
        f"thread IN ({', '.join(sql_str(t) for t in threads)})"
    )
    frame = store.select("embeddings", where, ["key", "vector"])
    return {
        str(key): np.asarray(vector, dtype=np.float32)
        for key, vector in zip(frame["key"], frame["vector"], strict=True)
    }


def _thread_steps(
    member: Member,
    rows: list[Row],
    vectors: dict[str, np.ndarray[Any, Any]],
    genesis_vectors: dict[str, np.ndarray[Any, Any]],
) -> ThreadSteps:
    # the steps with a vector of this model: texts, or pictures for an image model
    embedded = [(step, key, out) for step, _kind, key, out in rows if key in vectors]
    genesis = genesis_vectors[member.spec.genesis]
    return ThreadSteps(
        thread=member.thread,
        network=member.spec.network.name,
        network_size=len(member.spec.network.models),
        genesis=member.spec.genesis,
        seed=member.spec.seed,
        steps=[step for step, _, _, _ in rows],
        identities=[f"{kind}\0{out}" for _, kind, _, out in rows],
        vector_steps=[step for step, _, _ in embedded],
        vectors=(
            np.stack([vectors[key] for _, key, _ in embedded])
            if embedded
            else np.zeros((0, len(genesis)))
        ).astype(np.float32),
        genesis_vector=genesis,
        final_output=embedded[-1][2] if embedded else None,
    )
