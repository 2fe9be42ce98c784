"""A sweep without Prefect: which live threads share their next model, as batches, one per tick
and model.

Each thread is an ordinary `NetworkLoop`; the sweep only decides what runs together. Threads
whose next call is the same model with the same parameters go in one batch, so a tick costs
one model call per distinct model, however many threads are live.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sandloop.hashing import canonical_json
from sandloop.loops.network.engine import NetworkLoop
from sandloop.loops.protocol import Call


@dataclass
class Live:
    """A thread in the sweep's window."""

    loop: NetworkLoop
    network: str  # its network's name, for the report
    genesis: str
    seed: int | None
    first_step: int = 0  # where this session took it up
    failed: str | None = None  # the error that stopped it


@dataclass
class Batch:
    model: str
    facet: str  # the threads' facet, or the model when their roles differ
    items: list[tuple[Live, Call]] = field(default_factory=list)

    @property
    def calls(self) -> list[Call]:
        return [call for _, call in self.items]


def batches(live: Iterable[Live]) -> list[Batch]:
    """The next call of every live thread, grouped by model and parameters (in first-seen
    order, so a sweep's task runs come in the same order every time)."""
    groups: dict[tuple[str, str], Batch] = {}
    for thread in live:
        call = thread.loop.plan()
        key = (call.model, canonical_json(call.params).decode())
        batch = groups.get(key)
        if batch is None:
            batch = groups[key] = Batch(call.model, call.facet)
        elif batch.facet != call.facet:
            batch.facet = call.model
        batch.items.append((thread, call))
    return list(groups.values())
