"""What every loop kind promises the driver, and what the driver hands back.

A loop is plain Python: ``plan()`` says which model call comes next, with everything its record
needs that is known before the model answers (address, key, input, parameters, seed);
``advance(call, outcome)`` takes what the call came to and says what to record with it; and
``stop_reason(now)`` says whether the loop is done. Everything Prefect does (task runs, retries,
recording, progress, artifacts, hand-offs) is the driver's, so a loop runs the same under
Prefect, in a test, or in a property check of its resume.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar

from sandloop.loops.status import StopReason
from sandloop.models.io_types import IOType


@dataclass(frozen=True)
class Call:
    """One model call a loop asks for."""

    kind: str  # network | dialogue | recipe
    realm: str
    thread: str
    step: int
    facet: str
    model: str
    key: str
    step_key: str
    parent_key: str | None
    input_type: IOType
    input_value: str  # text, or the blob hash of an image
    output_type: IOType
    params: dict[str, Any]
    seed: int | None
    index: int = 0  # which call of this facet in its thread (a scripted model's position)
    messages: tuple[dict[str, str], ...] | None = None  # a dialogue turn's chat view
    metadata: dict[str, Any] = field(default_factory=dict)  # recorded with the call


@dataclass(frozen=True)
class Outcome:
    """What a call came to: an output (its text, or the blob hash of an image) or a failure
    that retries could not fix, as one line and a type."""

    started_at: datetime
    finished_at: datetime
    value: str | None = None
    usage: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)  # the platform's (route, cost…)
    error: str | None = None
    error_type: str | None = None
    task_run_id: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class Recorded:
    """What a loop adds to a call's record: metadata, and the output when the loop keeps it in
    another form than the model gave it (a dialogue turn is kept stripped)."""

    metadata: dict[str, Any] = field(default_factory=dict)
    output: str | None = None


class Loop(Protocol):
    kind: str
    thread: str

    def plan(self) -> Call:
        """The next call; asked only while ``stop_reason`` is None."""
        ...

    def advance(self, call: Call, outcome: Outcome) -> Recorded: ...

    def stop_reason(self, now: datetime) -> StopReason | None: ...

    def due_at(self) -> datetime | None:
        """When the next call may be made (a paced run); None: now."""
        ...

    @property
    def steps_done(self) -> int:
        """Steps recorded so far, in this session and before it."""
        ...


StateT = TypeVar("StateT", contravariant=True)


class StopCondition(Protocol[StateT]):
    """One way a loop ends, checked between calls; a loop's list of them is built from its spec,
    and the first that holds is the reason."""

    def check(self, state: StateT, now: datetime) -> StopReason | None: ...


def first_stop(
    conditions: Sequence[StopCondition[StateT]], state: StateT, now: datetime
) -> StopReason | None:
    for condition in conditions:
        if (reason := condition.check(state, now)) is not None:
            return reason
    return None
