"""A network run as one Prefect flow run.

The flow takes the thread id (and where the store is): the run's spec, genesis and progress are
read from the store, so a first run, a resume after a crash and a scheduled continuation are the
same call. Each step is a task run; its row goes to the write-ahead log as soon as it exists.
A deployment passes the run's fields instead, and the thread is registered first.

In a deployment, a pace wait longer than the policy's threshold ends the flow run and schedules
its continuation at the due time (see `continuation`); elsewhere the process waits, counting down.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from prefect import flow, get_run_logger, runtime
from prefect.futures import PrefectFuture
from prefect.states import Cancelled, Completed, Failed

from sandloop.config import Settings
from sandloop.embedding.service import convergence_embedders
from sandloop.flows.artifacts import RunArtifacts, label_flow_run, run_tags
from sandloop.flows.cancelling import cancelled_meanwhile
from sandloop.flows.continuation import (
    Continuation,
    current_deployment_id,
    live_continuation,
    schedule_continuation,
)
from sandloop.flows.driver import Driver, HandOff, current_flow_run_id
from sandloop.flows.home import open_home, resolve_seed
from sandloop.loops.network import engine
from sandloop.loops.network.engine import NetworkLoop
from sandloop.loops.network.pacing import hands_off
from sandloop.loops.network.spec import RunSpec
from sandloop.loops.spec_check import stored
from sandloop.loops.spec_files import SpecError
from sandloop.loops.status import FINAL_REASONS, RunStatus, StopReason, status_after
from sandloop.models.registry import Catalog, catalog_for
from sandloop.registration import RunRecord, get_record, put_record, register_run, run_spec_from
from sandloop.registration import thread_of as registered_thread
from sandloop.storage.journal import WriterLog
from sandloop.storage.store import AkashicStore, DamagedStore, NotFound
from sandloop.storage.wal import ThreadLocked
from sandloop.summaries import RunSummary
from sandloop.tasks.embed import embed_thread_outputs

# How long a deployed flow run waits for the thread's lock: its predecessor may still be
# closing when a continuation starts (workers start scheduled runs a little early).
LOCK_WAIT_IN_DEPLOYMENTS_S = 120.0


def _flow_run_name() -> str:
    thread = runtime.flow_run.parameters.get("thread")
    return f"network · thread {str(thread)[:8]}" if thread else "network · new thread"


def _spec_of(run: dict[str, Any], catalog: Catalog) -> RunSpec:
    """The run a deployment's parameters describe. ``seed: scheduled`` seeds it from the flow
    run's scheduled time, so each firing of a schedule is its own thread, and a retry of that
    firing is the same one."""
    return run_spec_from({**run, "seed": resolve_seed(run.get("seed"))}, catalog)


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
    settings, store, catalog = open_home(home)
    run_spec = stored(spec, RunSpec, catalog) if spec is not None else None
    if thread is None:
        if run is None:
            raise SpecError("network-run: give a thread to resume, or run: {network, genesis, …}")
        run_spec = _spec_of(run, catalog)
        thread = registered_thread(run_spec)
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
        if run_spec is not None:
            register_run(store, run_spec, session)
        record = get_record(store, thread)  # read back: registering rewrote it
        if record is None:
            raise NotFound(f"no run with thread {thread}; register it with `sandloop run` first")
        summary = _run_steps(store, log, settings, record, recorded, deployment_id)
    except DamagedStore as exc:
        return Failed(message=str(exc), data=exc)  # nothing ran: the store needs a doctor
    finally:
        log.close()
    if summary.status == "failed":
        return Failed(message=f"step {summary.steps_total}: {summary.error}", data=summary)
    if summary.status == RunStatus.CANCELLED:
        return Cancelled(message=f"cancelled at step {summary.steps_total}", data=summary)
    if cancelled_meanwhile(current_flow_run_id()):
        return Cancelled(message=f"cancelled after its last step ({summary.status})", data=summary)
    return summary


def _hand_off(
    deployment_id: str | None, spec: RunSpec, thread: str, settings: Settings, tags: list[str]
) -> HandOff | None:
    """In a deployment, how a long pace wait goes to a continuation; elsewhere nothing does."""
    if deployment_id is None:
        return None

    def hand_off(step: int, due: datetime, wait_s: float) -> Continuation | None:
        """The continuation that takes ``step`` on at ``due``; None means wait here: the wait
        is short, this flow run is that continuation (started early), or the server would not
        take the schedule (the run is not lost for a failed API call; it holds its worker this
        once)."""
        if not hands_off(spec.pace, wait_s):
            return None
        try:
            continuation = schedule_continuation(
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
        if continuation is not None:
            get_run_logger().info(
                "step %d is due in %.0f s: handed to flow run %s, scheduled at %s",
                step,
                wait_s,
                continuation.flow_run_name,
                continuation.scheduled_at,
            )
        return continuation

    return hand_off


def _run_steps(
    store: AkashicStore,
    log: WriterLog,
    settings: Settings,
    record: RunRecord,
    recorded: Any,
    deployment_id: str | None = None,
) -> RunSummary:
    thread = record.thread
    spec = stored(record.spec, RunSpec, catalog_for(settings))
    draws = any(entry.info.output_type == "image" for entry in spec.network.models)
    embed, embed_images = convergence_embedders(store, settings, spec.stop.converge_above, draws)
    loop = engine.resume(
        spec,
        thread,
        str(record.genesis),
        record.created_at or engine.now_utc(),
        recorded,
        embed=embed,
        embed_images=embed_images,
    )
    first_step = loop.next_step
    flow_run_id = current_flow_run_id()
    tags = run_tags("network", spec.network.realm, thread, record.session)

    no_steps = f"{spec.network.name} · thread {thread[:6]} · no steps"
    reason = loop.stop_reason(loop.session_started)
    if reason in FINAL_REASONS and record.status == RunStatus.COMPLETED:
        label_flow_run(name=no_steps, tags=tags)  # a re-run, or a duplicate that came late
        return _summary(spec, loop, reason, first_step, already_finished=True)
    if deployment_id is not None and (handed := live_continuation(record.as_row())) is not None:
        get_run_logger().info(
            "thread %s waits for flow run %s (due %s); this flow run has nothing to do",
            thread[:12],
            handed.flow_run_name,
            handed.scheduled_at,
        )
        label_flow_run(name=no_steps, tags=tags)
        return replace(
            _summary(spec, loop, StopReason.HANDED_OFF, first_step),
            flow_run_id=flow_run_id,
            next_due_at=handed.scheduled_at.isoformat(),
            continuation=handed.flow_run_id,
        )

    running = record.but(
        status=RunStatus.RUNNING.value,
        flow_run_id=flow_run_id,
        error=None,
        next_due_at=None,
        continuation=None,
    )
    put_record(store, running)
    label_flow_run(
        name=f"{spec.network.name} · thread {thread[:6]} · from step {first_step}", tags=tags
    )
    background = _BackgroundEmbedding(settings, thread)
    artifacts = RunArtifacts("network", thread, spec.stop.max_steps, first_step)
    driver = Driver(
        store,
        log,
        settings,
        flush_every=settings.flush_every,
        artifacts=artifacts,
        on_flush=background.submit,
        hand_off=_hand_off(deployment_id, spec, thread, settings, tags),
        cancellable=True,
    )
    session = driver.run(loop)
    continuation = session.continuation
    summary = replace(
        _summary(spec, loop, session.reason, first_step, error=session.error),
        duration_s=session.duration_s,
        flow_run_id=flow_run_id,
        next_due_at=continuation.scheduled_at.isoformat() if continuation else None,
        continuation=continuation.flow_run_id if continuation else None,
    )
    put_record(
        store,
        running.but(
            status=summary.status,
            stop_reason=summary.stop_reason,
            loop_length=summary.loop_length,
            steps=summary.steps_total,
            error=session.error,
            next_due_at=continuation.scheduled_at if continuation else None,
            continuation=continuation.flow_run_id if continuation else None,
        ),
    )
    # The record is complete: a continuation may take the thread while this run tidies up.
    log.close()
    summary = replace(summary, embedded=background.wait())
    last = summary.steps_total - (0 if session.error else 1)
    ran = f"steps {first_step}–{last}" if last >= first_step else "no steps"
    title = f"{spec.network.name} · thread {thread[:6]} · {ran}"
    artifacts.finish(store.steps(thread), store, title)
    label_flow_run(name=title)
    return summary


def _summary(
    spec: RunSpec,
    loop: NetworkLoop,
    reason: StopReason,
    first_step: int,
    *,
    error: str | None = None,
    already_finished: bool = False,
) -> RunSummary:
    return RunSummary(
        thread=loop.thread,
        name=spec.network.name,
        status=status_after(reason).value,
        stop_reason=reason.value,
        steps_total=loop.next_step,
        steps_this_session=loop.next_step - first_step,
        loop_length=loop.loop_length,
        error=error,
        already_finished=already_finished,
    )
