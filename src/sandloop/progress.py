"""Step events for whoever is watching a run in this process (the CLI's progress bar).

Flow parameters must be serialisable, so a callback cannot be passed in; observers subscribe
here instead. With nobody subscribed, publishing costs a list check.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class StepEvent:
    thread: str
    step: int
    model: str
    status: str
    latency_ms: float
    output_excerpt: str
    waiting_s: float = 0.0


@dataclass(frozen=True)
class SweepTick:
    """A sweep finished a tick: how many of its threads are done, how many steps it took."""

    sweep: str
    tick: int
    threads_done: int
    threads: int
    steps: int


@dataclass(frozen=True)
class JudgeProgress:
    """A judge finished a batch: how many outputs it has read, how many verdicts it recorded."""

    snapshot: str
    judged: int
    total: int
    verdicts: int


Event = StepEvent | SweepTick | JudgeProgress
Observer = Callable[[Event], None]
_observers: list[Observer] = []


def publish(event: Event) -> None:
    for observer in list(_observers):
        observer(event)


@contextmanager
def observing(observer: Observer) -> Iterator[None]:
    _observers.append(observer)
    try:
        yield
    finally:
        _observers.remove(observer)
