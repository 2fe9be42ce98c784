"""The one Prefect code that runs steps, for every loop kind.

A loop (`sandloop.loops`) says which call comes next and when it is done; the driver makes each
call a task run (retried only when a retry can help), turns the task's state into a typed
outcome, records the row the moment it exists, and tells whoever watches: the CLI's progress
bar, the run's progress artifact. Waiting for a paced step, or handing it to a scheduled
continuation, is the driver's too.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from prefect import State, get_run_logger, runtime
from prefect.results import ResultRecord  # type: ignore[attr-defined]  # re-exported there
from prefect.tasks import exponential_backoff
from prefect.utilities.annotations import quote

from sandloop.config import Settings
from sandloop.display import excerpt
from sandloop.flows.artifacts import RunArtifacts
from sandloop.flows.cancelling import CancelWatch
from sandloop.flows.continuation import Continuation
from sandloop.loops.protocol import Call, Loop, Outcome, Recorded
from sandloop.loops.status import StopReason
from sandloop.models.base import CallContext, ModelInput, ModelOutput
from sandloop.models.errors import ModelError
from sandloop.progress import StepEvent, publish
from sandloop.records import invocation_row
from sandloop.storage.journal import WriterLog
from sandloop.storage.store import AkashicStore
from sandloop.streaming import text_sink
from sandloop.tasks.invoke import invoke_model

#: hand_off(step, due, wait_s) -> the continuation that takes the step on, or None: wait here.
HandOff = Callable[[int, datetime, float], Continuation | None]
#: After a row is in the log: (call, outcome, row).
OnRecorded = Callable[[Call, Outcome, dict[str, Any]], None]


@dataclass
class Session:
    """What one flow run's stretch of a loop came to."""

    reason: StopReason
    first_step: int
    error: str | None = None
    continuation: Continuation | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)  # kept only when asked for
    started: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def duration_s(self) -> float:
        return (datetime.now(UTC) - self.started).total_seconds()


def current_flow_run_id() -> str | None:
    return str(runtime.flow_run.id or "") or None


def value_of(state: State[Any]) -> Any:
    """A finished task's or flow's return value or exception. In this process it is in the
    state's result record already; `State.result()` would fetch it through Prefect's event-loop
    thread, a few milliseconds per step."""
    if isinstance(state.data, ResultRecord):
        return state.data.result
    # _sync: under a running event loop (a notebook) Prefect would hand back a coroutine.
    return state.result(raise_on_failure=False, _sync=True)  # type: ignore[call-overload]


def outcome_of(
    state: State[ModelOutput],
    started: datetime,
    finished: datetime,
    store: AkashicStore,
) -> Outcome:
    """A task state as a typed outcome."""
    task_run_id = str(state.state_details.task_run_id or "") or None
    return outcome_from(value_of(state), started, finished, task_run_id, store)


def outcome_from(
    answer: ModelOutput | BaseException,
    started: datetime,
    finished: datetime,
    task_run_id: str | None,
    store: AkashicStore,
) -> Outcome:
    """A model's answer (an output, or the error retries could not fix) as a typed outcome; an
    image or audio output goes to the blob store, and the outcome keeps its hash."""
    if isinstance(answer, ModelOutput):
        value = answer.text or "" if answer.type == "text" else store.blobs.put(answer.data or b"")
        return Outcome(
            started,
            finished,
            value=value,
            usage=dict(answer.usage or {}),
            metadata=dict(answer.metadata),
            task_run_id=task_run_id,
        )
    metadata: dict[str, Any] = {}
    if decisions := getattr(answer, "decisions", None):
        metadata["route"] = {"chosen": None, "decisions": decisions}
    return Outcome(
        started,
        finished,
        metadata=metadata,
        error=answer.one_line() if isinstance(answer, ModelError) else repr(answer),
        error_type=getattr(answer, "kind", type(answer).__name__),
        task_run_id=task_run_id,
    )


class Driver:
    """Runs one thread's loop in the current flow run, writing to the thread's log (whose lock
    the caller holds)."""

    def __init__(
        self,
        store: AkashicStore,
        log: WriterLog,
        settings: Settings,
        *,
        task_run_name: str = "step {step} · {facet}",
        flush_every: int | None = None,
        artifacts: RunArtifacts | None = None,
        events: bool = True,
        on_recorded: OnRecorded | None = None,
        on_flush: Callable[[], None] | None = None,
        hand_off: HandOff | None = None,
        keep_rows: bool = False,
        cancellable: bool = False,
    ) -> None:
        """``keep_rows``: hand back this session's rows (a recipe records its final answer
        again); a network run of many steps keeps none in memory. ``cancellable``: stop between
        steps once the flow run is being cancelled (`flows.cancelling`)."""
        self.store, self.log, self.settings = store, log, settings
        self.keep_rows = keep_rows
        self.flush_every, self.artifacts, self.events = flush_every, artifacts, events
        self.on_recorded, self.on_flush, self.hand_off = on_recorded, on_flush, hand_off
        self.flow_run_id = current_flow_run_id()
        self.cancel = CancelWatch(self.flow_run_id) if cancellable and self.flow_run_id else None
        self._invoke = invoke_model.with_options(
            task_run_name=task_run_name,
            retries=settings.retries,
            retry_delay_seconds=exponential_backoff(backoff_factor=settings.retry_backoff_s),
        )

    def invoke(self, call: Call) -> Outcome:
        if call.input_type == "text":
            model_input = ModelInput("text", text=call.input_value, messages=call.messages)
        else:
            model_input = ModelInput(call.input_type, data=self.store.blobs.get(call.input_value))
        started = datetime.now(UTC)
        # quote(): Prefect walks task parameters looking for futures, several times per task
        # run; these hold none, and walking Settings and the input cost more than the call.
        state: State[ModelOutput] = self._invoke(
            call.step,
            call.facet,
            call.model,
            quote(model_input),
            quote(call.params),
            quote(
                CallContext(
                    seed=call.seed,
                    step_key=call.step_key,
                    index=call.index,
                    on_text=text_sink.get(),
                )
            ),
            quote(self.settings),
            return_state=True,
        )
        return outcome_of(state, started, datetime.now(UTC), self.store)

    def record(self, call: Call, outcome: Outcome, recorded: Recorded) -> dict[str, Any]:
        row = invocation_row(call, outcome, recorded, self.flow_run_id)
        self.log.append(row)
        return row

    def flush(self) -> None:
        self.store.flush(self.log)
        if self.on_flush is not None:
            self.on_flush()

    def run(self, loop: Loop) -> Session:
        session = Session(StopReason.FAILED, loop.steps_done)
        since_flush = 0
        try:
            while (reason := loop.stop_reason(datetime.now(UTC))) is None:
                if (due := loop.due_at()) is not None:
                    # A pace wait that would outlast --max-duration ends the session now.
                    if (reason := loop.stop_reason(due)) is not None:
                        break
                    wait_s = (due - datetime.now(UTC)).total_seconds()
                    if self.hand_off is not None and wait_s > 0:
                        session.continuation = self.hand_off(loop.steps_done, due, wait_s)
                        if session.continuation is not None:
                            reason = StopReason.HANDED_OFF
                            break
                    if not self._wait_until(due, loop.thread, loop.steps_done):
                        reason = StopReason.CANCELLED
                        break
                if self.cancel is not None and self.cancel.asked():
                    reason = StopReason.CANCELLED
                    break
                call = loop.plan()
                outcome = self.invoke(call)
                row = self.record(call, outcome, loop.advance(call, outcome))
                if self.keep_rows:
                    session.rows.append(row)
                since_flush += 1
                if self.flush_every is not None and since_flush >= self.flush_every:
                    self.flush()
                    since_flush = 0
                if self.on_recorded is not None:
                    self.on_recorded(call, outcome, row)
                self._tell(loop, row)
                if not outcome.ok:
                    reason, session.error = StopReason.FAILED, outcome.error
                    break
        except BaseException:
            with contextlib.suppress(Exception):  # keep what was recorded; the cause is raised
                self.store.flush(self.log)
            raise
        self.flush()
        session.reason = reason
        return session

    def _tell(self, loop: Loop, row: dict[str, Any]) -> None:
        if self.artifacts is not None:
            self.artifacts.step_done(row["step"] + 1)
        if self.events:
            publish(
                StepEvent(
                    row["thread"],
                    row["step"],
                    row["facet"],
                    row["status"],
                    row["latency_ms"],
                    excerpt(row["output"], row["output_type"]),
                )
            )

    def _wait_until(self, due: datetime, thread: str, step: int) -> bool:
        """Sleep until ``due``, publishing the time left every second (the CLI's countdown);
        False if the run was cancelled meanwhile."""
        delay = (due - datetime.now(UTC)).total_seconds()
        if delay <= 0:
            return True
        if delay >= 5:
            get_run_logger().info("step %d is due at %s; waiting %.0f s", step, due, delay)
        while delay > 0:
            if self.cancel is not None and self.cancel.asked():
                return False
            publish(StepEvent(thread, step, "", "waiting", 0.0, "", waiting_s=delay))
            time.sleep(min(1.0, delay))
            delay = (due - datetime.now(UTC)).total_seconds()
        return True
