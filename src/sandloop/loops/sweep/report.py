"""What a sweep came to: its threads as a table, and per network × genesis how they ended.

Read from the store only; a sweep is rebuilt from its spec (its members are deterministic), so
nothing about a thread is kept twice.
"""

from __future__ import annotations

from itertools import islice
from typing import Any

import pandas as pd

from sandloop.loops.sweep.spec import SweepSpec
from sandloop.storage.store import AkashicStore

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
