"""The network-run engine without Prefect: where a thread stands, what the next step is, and the
row that records it.

Everything here is derived from the recorded steps, so a resumed run (after a crash, or a later
continuation) computes exactly what an uninterrupted one would have: the next step number and
input, the repeat detector's memory, the next due time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from sandloop.keys import derive_seed, hash_value, invocation_key, step_key
from sandloop.models.registry import IOType
from sandloop.pacing import next_due_at
from sandloop.records import invocation_columns
from sandloop.specs import NetworkEntry, RunSpec
from sandloop.stopping import ConvergenceDetector, RepeatDetector, StopReason

KIND_NETWORK = "network"


@dataclass(frozen=True)
class StepPlan:
    """Everything about the next step that is known before the model is called."""

    step: int
    entry: NetworkEntry
    step_key: str
    key: str
    parent_key: str | None
    input_type: IOType
    input_value: str  # text, or a blob hash for images
    params: dict[str, Any]
    seed: int | None


@dataclass
class ThreadState:
    spec: RunSpec
    realm: str
    thread: str
    started_at: datetime
    next_step: int = 0
    last_value: str = ""
    last_type: IOType = "text"
    last_key: str | None = None
    last_finished_at: datetime | None = None
    finished: StopReason | None = None
    loop_length: int | None = None
    repeats: RepeatDetector = field(init=False)
    convergence: ConvergenceDetector | None = field(init=False)

    def __post_init__(self) -> None:
        self.repeats = RepeatDetector(len(self.spec.network.models))
        stop = self.spec.stop
        self.convergence = (
            ConvergenceDetector(stop.converge_above, stop.converge_window)
            if stop.converge_above is not None
            else None
        )

    def observe_vector(self, step: int, vector: Any) -> tuple[int, float] | None:
        """Feed an output's embedding to the convergence stop; may mark the run finished."""
        if self.convergence is None:
            return None
        match = self.convergence.observe(step, vector)
        if match is not None and self.finished is None:
            self.finished, self.loop_length = StopReason.CONVERGED, step - match[0]
        return match

    @property
    def detects_repeats(self) -> bool:
        """Unseeded runs are not reproducible, so an exact repeat says nothing about a loop."""
        return self.spec.seed is not None and self.spec.stop.stop_on_repeat

    def plan(self) -> StepPlan:
        models = self.spec.network.models
        entry = models[self.next_step % len(models)]
        params = entry.resolved_params()
        s_key = step_key(self.thread, self.next_step)
        input_hash = hash_value({"type": self.last_type, "value": self.last_value})
        seed = None if self.spec.seed is None else derive_seed(self.spec.seed, self.next_step)
        return StepPlan(
            step=self.next_step,
            entry=entry,
            step_key=s_key,
            key=invocation_key(s_key, entry.facet, input_hash, params),
            parent_key=self.last_key,
            input_type=self.last_type,
            input_value=self.last_value,
            params=params,
            seed=seed,
        )

    def advance(self, plan: StepPlan, output_value: str, finished_at: datetime) -> None:
        """Take a successful step into account; may mark the run finished by repeat."""
        self.next_step = plan.step + 1
        self.last_value = output_value
        self.last_type = plan.entry.info.output_type
        self.last_key = plan.key
        self.last_finished_at = finished_at
        if self.detects_repeats:
            loop = self.repeats.observe(plan.step, hash_value([self.last_type, output_value]))
            if loop is not None:
                self.finished, self.loop_length = StopReason.REPEAT, loop

    def stop_reason(self, session_started: datetime, now: datetime) -> StopReason | None:
        if self.finished is not None:
            return self.finished
        stop = self.spec.stop
        if stop.max_steps is not None and self.next_step >= stop.max_steps:
            return StopReason.MAX_STEPS
        if (
            stop.max_duration_s is not None
            and (now - session_started).total_seconds() >= stop.max_duration_s
        ):
            return StopReason.MAX_DURATION
        return None

    def due_at(self) -> datetime:
        if self.last_finished_at is None:
            return self.started_at
        return next_due_at(self.spec.pace, self.next_step, self.started_at, self.last_finished_at)


def resume(
    spec: RunSpec,
    thread: str,
    genesis_value: str,
    started_at: datetime,
    recorded: pd.DataFrame,
) -> ThreadState:
    """Rebuild a thread's state from its recorded steps (an empty frame for a new run)."""
    state = ThreadState(
        spec=spec,
        realm=spec.network.realm,
        thread=thread,
        started_at=started_at,
        last_value=genesis_value,
        last_type=spec.network.input_type,
    )
    if recorded.empty:
        return state
    ok = recorded[recorded["status"] == "ok"].sort_values("step")
    for row in ok.itertuples(index=False):
        if int(row.step) != state.next_step:
            break  # a gap can only follow a failure; resume from the gap
        plan = state.plan()
        finished = row.finished_at.to_pydatetime() if row.finished_at is not None else started_at
        state.advance(plan, str(row.output), finished)
        state.last_key = str(row.key)
    return state


def now_utc() -> datetime:
    return datetime.now(UTC)


def invocation_row(
    state: ThreadState,
    plan: StepPlan,
    *,
    status: str,
    output_value: str | None,
    started_at: datetime,
    finished_at: datetime,
    error: str | None = None,
    error_type: str | None = None,
    flow_run_id: str | None = None,
    task_run_id: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return invocation_columns(
        key=plan.key,
        parent_key=plan.parent_key,
        realm=state.realm,
        thread=state.thread,
        step=plan.step,
        step_key=plan.step_key,
        facet=plan.entry.facet,
        kind=KIND_NETWORK,
        model=plan.entry.model,
        input_value=plan.input_value,
        input_type=plan.input_type,
        output=output_value,
        output_type=plan.entry.info.output_type,
        params=plan.params,
        seed=plan.seed,
        status=status,
        started_at=started_at,
        finished_at=finished_at,
        error=error,
        error_type=error_type,
        flow_run_id=flow_run_id,
        task_run_id=task_run_id,
        metadata=metadata,
    )
