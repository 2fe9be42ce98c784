"""The network-run engine without Prefect: where a thread stands, which call comes next, and when
it is done.

Everything here is derived from the recorded steps, so a resumed run (after a crash, or a later
continuation) computes exactly what an uninterrupted one would have: the next step number and
input, the repeat detector's memory, the next due time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from sandloop.hashing import derive_seed, hash_value, invocation_key, step_key
from sandloop.loops.network.pacing import next_due_at
from sandloop.loops.network.spec import NetworkEntry, RunSpec, StopConditions
from sandloop.loops.network.stopping import ConvergenceDetector, RepeatDetector
from sandloop.loops.protocol import Call, Outcome, Recorded, StopCondition, first_stop
from sandloop.loops.status import StopReason
from sandloop.models.io_types import IOType

KIND_NETWORK = "network"

#: Embeds texts (or, for image steps, the images behind blob keys) as L2-normalised rows, for
#: the convergence stop.
Embed = Callable[[list[str]], npt.NDArray[np.float32]]


@dataclass(frozen=True)
class Detected:
    """An exact repeat or a semantic convergence, found as the steps came in."""

    def check(self, state: NetworkLoop, now: datetime) -> StopReason | None:
        return state.finished


@dataclass(frozen=True)
class MaxSteps:
    steps: int

    def check(self, state: NetworkLoop, now: datetime) -> StopReason | None:
        return StopReason.MAX_STEPS if state.next_step >= self.steps else None


@dataclass(frozen=True)
class MaxDuration:
    """Wall time of one session: a resumed run gets the whole budget again."""

    seconds: float

    def check(self, state: NetworkLoop, now: datetime) -> StopReason | None:
        elapsed = (now - state.session_started).total_seconds()
        return StopReason.MAX_DURATION if elapsed >= self.seconds else None


def network_stops(stop: StopConditions) -> list[StopCondition[NetworkLoop]]:
    conditions: list[StopCondition[NetworkLoop]] = [Detected()]
    if stop.max_steps is not None:
        conditions.append(MaxSteps(stop.max_steps))
    if stop.max_duration_s is not None:
        conditions.append(MaxDuration(stop.max_duration_s))
    return conditions


@dataclass
class NetworkLoop:
    spec: RunSpec
    thread: str
    started_at: datetime  # when the run was registered: the pace's clock
    session_started: datetime
    last_value: str = ""  # text, or a blob hash for images
    last_type: IOType = "text"
    embed: Embed | None = None  # for the convergence stop; None: off
    embed_images: Embed | None = None  # image steps' blob keys to vectors; None: texts only
    kind: str = KIND_NETWORK
    next_step: int = 0
    last_key: str | None = None
    last_finished_at: datetime | None = None
    finished: StopReason | None = None
    loop_length: int | None = None
    repeats: RepeatDetector = field(init=False)
    convergence: ConvergenceDetector | None = field(init=False)
    # image vectors are compared with image vectors only: another model's space, another window
    image_convergence: ConvergenceDetector | None = field(init=False)
    stops: list[StopCondition[NetworkLoop]] = field(init=False)
    # per network position: its entry, parameters (defaults filled in) and output type, worked
    # out once; a sweep plans thousands of steps per second, and each lookup and validation
    # would be paid per step
    _positions: list[tuple[NetworkEntry, dict[str, Any], IOType]] = field(init=False)
    _realm: str = field(init=False)

    def __post_init__(self) -> None:
        models = self.spec.network.models
        self._positions = [(e, e.resolved_params(), e.info.output_type) for e in models]
        self._realm = self.spec.network.realm
        self.repeats = RepeatDetector(len(models))
        stop = self.spec.stop
        self.convergence = self.image_convergence = None
        if stop.converge_above is not None:
            self.convergence = ConvergenceDetector(stop.converge_above, stop.converge_window)
            if self.embed_images is not None:
                window = stop.converge_window
                self.image_convergence = ConvergenceDetector(stop.converge_above, window)
        self.stops = network_stops(stop)

    @property
    def realm(self) -> str:
        return self._realm

    @property
    def steps_done(self) -> int:
        return self.next_step

    @property
    def detects_repeats(self) -> bool:
        """Unseeded runs are not reproducible, so an exact repeat says nothing about a loop."""
        return self.spec.seed is not None and self.spec.stop.stop_on_repeat

    def plan(self) -> Call:
        entry, resolved, output_type = self._positions[self.next_step % len(self._positions)]
        params = dict(resolved)
        s_key = step_key(self.thread, self.next_step)
        input_hash = hash_value({"type": self.last_type, "value": self.last_value})
        seed = None if self.spec.seed is None else derive_seed(self.spec.seed, self.next_step)
        return Call(
            kind=KIND_NETWORK,
            realm=self.realm,
            thread=self.thread,
            step=self.next_step,
            facet=entry.facet,
            model=entry.model,
            key=invocation_key(s_key, entry.facet, input_hash, params),
            step_key=s_key,
            parent_key=self.last_key,
            input_type=self.last_type,
            input_value=self.last_value,
            output_type=output_type,
            params=params,
            seed=seed,
            metadata={"role": entry.role},
        )

    def advance(self, call: Call, outcome: Outcome) -> Recorded:
        if not outcome.ok or outcome.value is None:
            return Recorded()
        self._take(call, outcome.value, outcome.finished_at)
        extra: dict[str, Any] = {}
        embed = self._embedder_for(call.output_type)
        if embed is not None:
            match = self.observe_vector(call.step, embed([outcome.value])[0], call.output_type)
            if match is not None:
                extra["converged_with_step"], extra["cosine"] = match
        extra["next_due_at"] = self.due_at().isoformat()
        return Recorded(extra)

    def _take(self, call: Call, value: str, finished_at: datetime) -> None:
        self.next_step = call.step + 1
        self.last_value = value
        self.last_type = call.output_type
        self.last_key = call.key
        self.last_finished_at = finished_at
        if self.detects_repeats:
            loop = self.repeats.observe(call.step, hash_value([self.last_type, value]))
            if loop is not None and self.finished is None:
                self.finished, self.loop_length = StopReason.REPEAT, loop

    def _embedder_for(self, output_type: IOType) -> Embed | None:
        if output_type == "text":
            return self.embed
        return self.embed_images if output_type == "image" else None

    def observe_vector(
        self, step: int, vector: Any, output_type: IOType = "text"
    ) -> tuple[int, float] | None:
        """Feed an output's embedding to the convergence stop; may mark the run finished."""
        detector = self.convergence if output_type == "text" else self.image_convergence
        if detector is None:
            return None
        match = detector.observe(step, vector)
        if match is not None and self.finished is None:
            self.finished, self.loop_length = StopReason.CONVERGED, step - match[0]
        return match

    def stop_reason(self, now: datetime) -> StopReason | None:
        return first_stop(self.stops, self, now)

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
    *,
    session_started: datetime | None = None,
    embed: Embed | None = None,
    embed_images: Embed | None = None,
) -> NetworkLoop:
    """Rebuild a thread's loop from its recorded steps (an empty frame for a new run). The
    convergence stop is primed with the last outputs (one more than its window, so a run that
    converged on its last step is seen as finished)."""
    loop = NetworkLoop(
        spec=spec,
        thread=thread,
        started_at=started_at,
        session_started=session_started or now_utc(),
        last_value=genesis_value,
        last_type=spec.network.input_type,
        embed=embed if spec.stop.converge_above is not None else None,
        embed_images=embed_images if spec.stop.converge_above is not None else None,
    )
    if recorded.empty:
        return loop
    ok = recorded[recorded["status"] == "ok"].sort_values("step")
    taken: dict[IOType, list[tuple[int, str]]] = {"text": [], "image": []}
    for row in ok.itertuples(index=False):
        if int(row.step) != loop.next_step:
            break  # a gap can only follow a failure; resume from the gap
        call = loop.plan()
        finished = row.finished_at.to_pydatetime() if row.finished_at is not None else started_at
        loop._take(call, str(row.output), finished)
        loop.last_key = str(row.key)
        if call.output_type in taken:
            taken[call.output_type].append((call.step, str(row.output)))
    if loop.convergence is not None:
        window = loop.convergence.window + 1
        for output_type, outputs in taken.items():
            _prime(loop, output_type, outputs[-window:])
    return loop


def _prime(loop: NetworkLoop, output_type: IOType, tail: Sequence[tuple[int, str]]) -> None:
    """Prime in step order, so a run that converged on its last step is seen as finished."""
    embed = loop._embedder_for(output_type)
    if embed is not None and tail:
        vectors = embed([value for _, value in tail])
        for (step, _), vector in zip(tail, vectors, strict=True):
            loop.observe_vector(step, vector, output_type)


def now_utc() -> datetime:
    return datetime.now(UTC)
