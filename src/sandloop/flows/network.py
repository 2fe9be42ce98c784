"""A network run as one Prefect flow run.

The flow takes the thread id (and where the store is): the run's spec, genesis and progress are
read from the store, so a first run, a resume after a crash and a scheduled continuation are the
same call. Each step is a task run; its row goes to the write-ahead log as soon as it exists.
A deployment passes the run's fields instead, and the thread is registered first.

In a deployment, a pace wait longer than the policy's threshold ends the flow run and schedules
its continuation at the due time (see `continuation`); elsewhere the process waits, counting down.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any

import pandas as pd
from prefect import State, flow, get_run_logger, runtime
from prefect.futures import PrefectFuture
from prefect.states import Completed, Failed
from prefect.tasks import exponential_backoff

from sandloop import api, engine
from sandloop.config import Settings
from sandloop.display import excerpt
from sandloop.embedding.embedders import Embedder, embedder_from
from sandloop.flows.artifacts import RunArtifacts, label_flow_run, run_tags
from sandloop.flows.continuation import (
    Continuation,
    current_deployment_id,
    live_continuation,
    schedule_continuation,
)
from sandloop.flows.home import open_home, resolve_seed
from sandloop.models.base import CallContext, ModelInput, ModelOutput
from sandloop.models.errors import ModelError
from sandloop.pacing import hands_off
from sandloop.progress import StepEvent, publish
from sandloop.specs import RunSpec, SpecError
from sandloop.stopping import FINAL_REASONS, StopReason
from sandloop.storage.journal import WriterLog
from sandloop.storage.store import AkashicStore, DamagedStore, NotFound
from sandloop.storage.wal import ThreadLocked
from sandloop.tasks.embed import embed_thread_outputs
from sandloop.tasks.invoke import invoke_model


@dataclass(frozen=True)
class RunSummary:
    thread: str
    name: str
    status: str  # completed | failed | stopped
    stop_reason: str
    steps_total: int
    steps_this_session: int
    loop_length: int | None = None
    error: str | None = None
    already_finished: bool = False
    duration_s: float = 0.0
    flow_run_id: str | None = None
    embedded: int | None = None  # outputs embedded in the background (None: off or failed)
    next_due_at: str | None = None  # a handed-off run: when its continuation is due
    continuation: str | None = None  # ... and which flow run that is

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# How long a deployed flow run waits for the thread's lock: its predecessor may still be
# closing when a continuation starts (workers start scheduled runs a little early).
LOCK_WAIT_IN_DEPLOYMENTS_S = 120.0


def _flow_run_name() -> str:
    thread = runtime.flow_run.parameters.get("thread")
    return f"network · thread {str(thread)[:8]}" if thread else "network · new thread"


def _wait_until(due: datetime, thread: str, step: int) -> None:
    """Sleep until ``due``, publishing the time left every second (the CLI's countdown)."""
    delay = (due - engine.now_utc()).total_seconds()
    if delay <= 0:
        return
    if delay >= 5:
        get_run_logger().info("step %d is due at %s; waiting %.0f s", step, due, delay)
    while delay > 0:
        publish(StepEvent(thread, step, "", "waiting", 0.0, "", waiting_s=delay))
        time.sleep(min(1.0, delay))
        delay = (due - engine.now_utc()).total_seconds()


def _spec_of(run: dict[str, Any]) -> RunSpec:
    """The run a deployment's parameters describe. ``seed: scheduled`` seeds it from the flow
    run's scheduled time, so each firing of a schedule is its own thread, and a retry of that
    firing is the same one."""
    return api.run_spec_from({**run, "seed": resolve_seed(run.get("seed"))})


def _model_input(store: AkashicStore, plan: engine.StepPlan) -> ModelInput:
    if plan.input_type == "text":
        return ModelInput("text", text=plan.input_value)
    return ModelInput(plan.input_type, data=store.blobs.get(plan.input_value))


def _output_value(store: AkashicStore, output: ModelOutput) -> str:
    """Text is stored inline; images go to the blob store and the record keeps the hash."""
    if output.type == "text":
        return output.text or ""
    return store.blobs.put(output.data or b"")


def _convergence_embedder(
    state: engine.ThreadState, recorded: pd.DataFrame, settings: Settings
) -> Embedder | None:
    """The embedder for the convergence stop, primed with the last outputs of a resumed run
    (one more than the window, so a run that converged on its last step is seen as finished)."""
    if state.convergence is None:
        return None
    embedder = embedder_from(settings)
    done = recorded[(recorded["status"] == "ok") & (recorded["output_type"] == "text")]
    tail = done.sort_values("step").tail(state.convergence.window + 1)
    if not tail.empty:
        vectors = embedder.embed(tail["output"].astype(str).tolist())
        for step, vector in zip(tail["step"], vectors, strict=True):
            state.observe_vector(int(step), vector)
    return embedder


class _BackgroundEmbedding:
    """Embeds flushed steps in a task-runner thread while the loop goes on, so a slow embedder
    never delays a model call. A failed embedding is a warning, not a failed run: the record is
    complete and `sandloop embed` back-fills it."""

    def __init__(self, settings: Settings, thread: str) -> None:
        self.settings, self.thread = settings, thread
        self.futures: list[PrefectFuture[dict[str, Any]]] = []

    def submit(self) -> None:
        if self.settings.embed_during_runs:
            self.futures.append(
                embed_thread_outputs.submit(str(self.settings.home), self.thread, self.settings)
            )

    def wait(self) -> int | None:
        if not self.futures:
            return None
        embedded = 0
        for future in self.futures:
            future.wait()
            if not future.state.is_completed():
                get_run_logger().warning(
                    "embedding outputs failed (%s); run `sandloop embed` to back-fill",
                    future.state.message,
                )
                return None
            embedded += int(future.result()["embedded"])
        return embedded


@flow(
    name="network-run",
    flow_run_name=_flow_run_name,
    log_prints=False,
    persist_result=False,
    validate_parameters=False,
)
def network_run(
    thread: str | None = None,
    home: str | None = None,
    run: dict[str, Any] | None = None,
    session: str | None = None,
    spec: str | None = None,
) -> Any:
    """Runs or resumes ``thread``; with ``spec`` (a RunSpec as JSON) registers it first, and
    without a thread registers the one ``run`` describes (a network file or mapping, genesis,
    seed, stop, pace), as deployments do. Registering happens under the thread's lock, so a
    refused second writer changes nothing.

    Returns the run's summary; a failed run ends the flow run Failed, with the step and the
    typed error as its state message and the summary as its data.
    """
    settings, store = open_home(home)
    run_spec = RunSpec.model_validate_json(spec) if spec is not None else None
    if thread is None:
        if run is None:
            raise SpecError("network-run: give a thread to resume, or run: {network, genesis, …}")
        run_spec = _spec_of(run)
        thread = api.thread_of(run_spec)
    deployment_id = current_deployment_id()
    try:
        log = store.open_thread(thread, wait_s=LOCK_WAIT_IN_DEPLOYMENTS_S if deployment_id else 0.0)
    except ThreadLocked as exc:
        if deployment_id is None:
            return Failed(message=str(exc), data=exc)  # the caller's error line, no traceback
        # A duplicate of a flow run that is still going: that one carries the thread on.
        return Completed(message=f"{exc}; this flow run has nothing to do")
    try:
        # Read under the lock: a predecessor may have written the run just before letting go.
        recorded = store.steps(thread)
        if (existing := store.get_run(thread)) is not None:
            store.check_recorded(existing, recorded)  # never recompute steps the store lost
        row = existing
        if run_spec is not None:
            api.register_run(store, run_spec, session)
            row = store.get_run(thread)  # read back: registering rewrote it
        if row is None:
            raise NotFound(f"no run with thread {thread}; register it with `sandloop run` first")
        recorded_spec = RunSpec.model_validate_json(row["spec"])
        summary = _run_steps(store, log, settings, recorded_spec, row, recorded, deployment_id)
    except DamagedStore as exc:
        return Failed(message=str(exc), data=exc)  # nothing ran: the store needs a doctor
    finally:
        log.close()
    if summary.status == "failed":
        return Failed(
            message=f"step {summary.steps_total}: {summary.error}", data=summary.as_dict()
        )
    return summary.as_dict()


def _hand_off(
    deployment_id: str,
    spec: RunSpec,
    thread: str,
    step: int,
    due: datetime,
    settings: Settings,
    tags: list[str],
) -> Continuation | None:
    """The continuation that takes ``step`` on at ``due``; None means wait here: this flow run is
    that continuation (started early), or the server would not take the schedule (the run is
    not lost for a failed API call; it just holds its worker this once)."""
    try:
        return schedule_continuation(
            deployment_id,
            thread=thread,
            step=step,
            due=due,
            parameters={"thread": thread, "home": str(settings.home)},
            name=f"{spec.network.name} · thread {thread[:6]} · from step {step}",
            tags=tags,
        )
    except Exception as exc:
        get_run_logger().warning("could not schedule a continuation (%s); waiting here", exc)
        return None


def _run_steps(
    store: AkashicStore,
    log: WriterLog,
    settings: Settings,
    spec: RunSpec,
    run: dict[str, Any],
    recorded: pd.DataFrame,
    deployment_id: str | None = None,
) -> RunSummary:
    thread = str(run["thread"])
    state = engine.resume(spec, thread, str(run["genesis"]), run["created_at"], recorded)
    embedder = _convergence_embedder(state, recorded, settings)
    background = _BackgroundEmbedding(settings, thread)
    session_started = engine.now_utc()
    first_step = state.next_step
    flow_run_id = str(runtime.flow_run.id or "") or None
    invoke = invoke_model.with_options(
        retries=settings.retries,
        retry_delay_seconds=exponential_backoff(backoff_factor=settings.retry_backoff_s),
    )

    reason = state.stop_reason(session_started, session_started)
    if reason in FINAL_REASONS and run["status"] == "completed":
        return _summary(spec, state, reason, first_step, already_finished=True)
    if deployment_id is not None and (handed := live_continuation(run)) is not None:
        get_run_logger().info(
            "thread %s waits for flow run %s (due %s); this flow run has nothing to do",
            thread[:12],
            handed.flow_run_name,
            handed.scheduled_at,
        )
        label_flow_run(
            name=f"{spec.network.name} · thread {thread[:6]} · no steps",
            tags=run_tags("network", spec.network.realm, thread, run.get("session")),
        )
        return replace(
            _summary(spec, state, StopReason.HANDED_OFF, first_step),
            flow_run_id=flow_run_id,
            next_due_at=handed.scheduled_at.isoformat(),
            continuation=handed.flow_run_id,
        )

    store.put_run(
        {
            **run,
            "status": "running",
            "flow_run_id": flow_run_id,
            "error": None,
            "next_due_at": None,
            "continuation": None,
        }
    )
    tags = run_tags("network", spec.network.realm, thread, run.get("session"))
    label_flow_run(
        name=f"{spec.network.name} · thread {thread[:6]} · from step {first_step}", tags=tags
    )
    artifacts = RunArtifacts("network", thread, spec.stop.max_steps, first_step)
    error: str | None = None
    continuation: Continuation | None = None
    since_flush = 0
    while (reason := state.stop_reason(session_started, engine.now_utc())) is None:
        due = state.due_at()
        # A pace wait that would outlast --max-duration ends the session now instead.
        if (reason := state.stop_reason(session_started, due)) is not None:
            break
        wait_s = (due - engine.now_utc()).total_seconds()
        if deployment_id is not None and hands_off(spec.pace, wait_s):
            continuation = _hand_off(
                deployment_id, spec, thread, state.next_step, due, settings, tags
            )
            if continuation is not None:
                get_run_logger().info(
                    "step %d is due in %.0f s: handed to flow run %s, scheduled at %s",
                    state.next_step,
                    wait_s,
                    continuation.flow_run_name,
                    continuation.scheduled_at,
                )
                reason = StopReason.HANDED_OFF
                break
        _wait_until(due, thread, state.next_step)
        plan = state.plan()
        started = engine.now_utc()
        task_state: State[ModelOutput] = invoke(
            plan.step,
            plan.entry.facet,
            plan.entry.model,
            _model_input(store, plan),
            plan.params,
            CallContext(seed=plan.seed, step_key=plan.step_key),
            settings,
            return_state=True,
        )
        finished = engine.now_utc()
        task_run_id = str(task_state.state_details.task_run_id or "") or None
        metadata: dict[str, Any] = {"role": plan.entry.role}
        output_value: str | None = None
        error_type: str | None = None
        if task_state.is_completed():
            output = task_state.result()
            output_value = _output_value(store, output)
            if output.usage:
                metadata["usage"] = output.usage
            metadata.update(output.metadata)
            state.advance(plan, output_value, finished)
            if embedder is not None and plan.entry.info.output_type == "text":
                match = state.observe_vector(plan.step, embedder.embed([output_value])[0])
                if match is not None:
                    metadata["converged_with_step"], metadata["cosine"] = match[0], match[1]
            metadata["next_due_at"] = state.due_at().isoformat()
        else:
            failure = task_state.result(raise_on_failure=False)
            error = failure.one_line() if isinstance(failure, ModelError) else repr(failure)
            error_type = getattr(failure, "kind", type(failure).__name__)
            if decisions := getattr(failure, "decisions", None):
                metadata["route"] = {"chosen": None, "decisions": decisions}
        row = engine.invocation_row(
            state,
            plan,
            status="ok" if error is None else "failed",
            output_value=output_value,
            started_at=started,
            finished_at=finished,
            error=error,
            error_type=error_type,
            flow_run_id=flow_run_id,
            task_run_id=task_run_id,
            metadata=metadata,
        )
        log.append(row)
        artifacts.step_done(plan.step + 1)
        since_flush += 1
        publish(
            StepEvent(
                thread,
                plan.step,
                plan.entry.facet,
                row["status"],
                row["latency_ms"],
                excerpt(row["output"], row["output_type"]),
            )
        )
        if error is not None:
            reason = StopReason.FAILED
            break
        if since_flush >= settings.flush_every:
            store.flush(log)
            background.submit()
            since_flush = 0

    store.flush(log)
    background.submit()
    summary = _summary(spec, state, reason, first_step, error=error)
    summary = replace(
        summary,
        duration_s=(engine.now_utc() - session_started).total_seconds(),
        flow_run_id=flow_run_id,
        next_due_at=continuation.scheduled_at.isoformat() if continuation else None,
        continuation=continuation.flow_run_id if continuation else None,
    )
    store.put_run(
        {
            **run,
            "status": summary.status,
            "stop_reason": summary.stop_reason,
            "loop_length": summary.loop_length,
            "steps": summary.steps_total,
            "error": error,
            "flow_run_id": flow_run_id,
            "next_due_at": continuation.scheduled_at if continuation else None,
            "continuation": continuation.flow_run_id if continuation else None,
        }
    )
    # The record is complete: a continuation may take the thread while this run tidies up.
    log.close()
    summary = replace(summary, embedded=background.wait())
    last = summary.steps_total - (0 if error else 1)
    ran = f"steps {first_step}–{last}" if last >= first_step else "no steps"
    title = f"{spec.network.name} · thread {thread[:6]} · {ran}"
    artifacts.finish(store.steps(thread), store, title)
    label_flow_run(name=title)
    return summary


def _summary(
    spec: RunSpec,
    state: engine.ThreadState,
    reason: StopReason,
    first_step: int,
    *,
    error: str | None = None,
    already_finished: bool = False,
) -> RunSummary:
    status = {
        StopReason.FAILED: "failed",
        StopReason.MAX_DURATION: "stopped",
        StopReason.HANDED_OFF: "waiting",
    }.get(reason, "completed")
    return RunSummary(
        thread=state.thread,
        name=spec.network.name,
        status=status,
        stop_reason=reason.value,
        steps_total=state.next_step,
        steps_this_session=state.next_step - first_step,
        loop_length=state.loop_length,
        error=error,
        already_finished=already_finished,
    )
