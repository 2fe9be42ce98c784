"""A sweep as one Prefect flow run: every tick advances each live thread by one step, with one
task run per model (`tick 12 · dummy:text#answer · 256 threads`).

Threads stream through a window of ``max_concurrent``: a thread enters when there is room, is
resumed from whatever it recorded (a killed sweep, re-run, goes on where each thread stopped),
and leaves when it stops, its record complete. Each thread is an ordinary network run: its own
`runs` row, its own writer lock and log, and the same keys and rows as `sandloop run` would give
it. Prefect's work grows with ticks × models, not with steps.
"""

from __future__ import annotations

import json
import resource
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from typing import Any

from prefect import flow, get_run_logger, runtime
from prefect.states import Failed

from sandloop.config import Settings
from sandloop.embedding.service import convergence_embedders
from sandloop.flows.artifacts import RunArtifacts, label_flow_run
from sandloop.flows.batched import invoke_together
from sandloop.flows.driver import current_flow_run_id
from sandloop.flows.home import open_home
from sandloop.loops.network import engine
from sandloop.loops.protocol import Outcome
from sandloop.loops.spec_check import stored
from sandloop.loops.status import FINAL_REASONS, RunStatus, StopReason, status_after
from sandloop.loops.sweep.engine import Batch, Live, batches
from sandloop.loops.sweep.spec import Member, SweepSpec
from sandloop.progress import SweepTick, publish
from sandloop.records import invocation_row
from sandloop.registration import RunRecord
from sandloop.storage.journal import WriterLog, append_together
from sandloop.storage.store import AkashicStore, sql_str
from sandloop.storage.wal import ThreadLocked
from sandloop.summaries import SweepSummary


@dataclass
class _Window:
    """The threads being advanced, each with the log it holds."""

    live: dict[str, Live] = field(default_factory=dict)
    logs: dict[str, WriterLog] = field(default_factory=dict)
    records: dict[str, RunRecord] = field(default_factory=dict)


@dataclass
class _Tally:
    threads: int = 0
    done: int = 0  # stopped, in this session or before it
    already: int = 0  # finished before this session: left untouched
    busy: int = 0  # run by another process right now: left to it
    steps: int = 0  # recorded in this session
    steps_total: int = 0  # recorded by the threads that stopped, in all sessions
    failed: int = 0
    task_runs: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


#: Threads taken into the window per store read (an IN list this long is one scan).
READ_CHUNK = 1000


def _sweep_run_name() -> str:
    spec = json.loads(runtime.flow_run.parameters.get("spec") or "{}")
    return f"sweep {spec.get('name', '?')}"  # a name is all it needs: no models are checked


def _room_for_logs(window: int) -> None:
    """Each thread in the window holds a lock and a log open: raise the soft limit on open
    files towards the hard one when the window needs it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4 * window + 256
    if soft != resource.RLIM_INFINITY and soft < wanted:
        ceiling = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (ceiling, hard))


@flow(
    name="sweep",
    flow_run_name=_sweep_run_name,
    persist_result=False,
    validate_parameters=False,
)
def sweep_flow(spec: str, home: str | None = None, session: str | None = None) -> Any:
    """Runs (or goes on with) the sweep ``spec`` (a SweepSpec as JSON); returns its summary. A
    thread whose model fails is recorded as failed and the others go on; the flow run fails
    only when every thread did."""
    settings, store, catalog = open_home(home)
    sweep = stored(spec, SweepSpec, catalog)
    _room_for_logs(sweep.max_concurrent)
    flow_run_id = current_flow_run_id()
    now = datetime.now(UTC)
    existing = store.rows("sweeps", f"name = {sql_str(sweep.name)}")
    total = sum(1 for _ in sweep.members())
    row: dict[str, Any] = {
        "name": sweep.name,
        "realm": sweep.realm,
        "spec": spec,
        "status": RunStatus.RUNNING.value,
        "threads": total,
        "threads_done": 0,
        "steps": 0,
        "error": None,
        "created_at": existing[0]["created_at"] if existing else now,
        "flow_run_id": flow_run_id,
    }
    store.upsert("sweeps", [{**row, "updated_at": now}])
    label_flow_run(name=f"sweep {sweep.name} · {total} threads", tags=["sandloop", "sweep"])
    tally = _Tally(threads=total)
    artifacts = RunArtifacts("sweep", sweep.realm, total, 0)
    started = datetime.now(UTC)
    window = _Window()
    members = sweep.members()
    ran_through = False
    try:
        _run(store, settings, sweep, members, window, tally, artifacts, session)
        ran_through = True
    finally:
        _close(store, window)
        if not ran_through:  # Ctrl-C or a crash: `sweep list` must not say running for ever
            stopped = {"status": RunStatus.STOPPED.value, "threads_done": tally.done}
            stopped.update(steps=tally.steps_total, updated_at=datetime.now(UTC))
            store.upsert("sweeps", [{**row, **stopped}])
    summary = SweepSummary(
        name=sweep.name,
        threads=total,
        threads_done=tally.done,
        already_finished=tally.already,
        busy=tally.busy,
        steps_this_session=tally.steps,
        failed=tally.failed,
        stop_reasons=dict(sorted(tally.reasons.items())),
        task_runs=tally.task_runs,
        duration_s=(datetime.now(UTC) - started).total_seconds(),
        flow_run_id=flow_run_id,
    )
    status = RunStatus.COMPLETED if tally.done == total else RunStatus.STOPPED
    store.upsert(
        "sweeps",
        [
            {
                **row,
                "status": status.value,
                "threads_done": tally.done,
                "steps": tally.steps_total,
                "updated_at": datetime.now(UTC),
            }
        ],
    )
    artifacts.finish_table(_thread_table(store, sweep), f"sweep {sweep.name}")
    label_flow_run(name=f"sweep {sweep.name} · {tally.done}/{total} threads · {tally.steps} steps")
    if total and tally.failed == total:
        return Failed(message=f"every thread of sweep {sweep.name} failed", data=summary)
    return summary


def _run(
    store: AkashicStore,
    settings: Settings,
    sweep: SweepSpec,
    members: Iterator[Member],
    window: _Window,
    tally: _Tally,
    artifacts: RunArtifacts,
    session: str | None,
) -> None:
    draws = any(e.info.output_type == "image" for n in sweep.networks for e in n.models)
    embeds = convergence_embedders(store, settings, sweep.stop.converge_above, draws)
    flow_run_id = current_flow_run_id()
    since_flush, tick = 0, 0
    while True:
        _refill(store, sweep, members, window, tally, embeds, session)
        if not window.live:
            break
        for batch in batches(window.live.values()):
            outcomes = _invoke(store, settings, tick, batch)
            tally.task_runs += 1
            entries = []
            for (live, call), outcome in zip(batch.items, outcomes, strict=True):
                row = invocation_row(call, outcome, live.loop.advance(call, outcome), flow_run_id)
                entries.append((window.logs[live.loop.thread], row))
                tally.steps += 1
                if not outcome.ok:
                    live.failed = outcome.error
            append_together(entries)  # the batch's rows durable at once: one sync, not one each
        since_flush += 1
        finished = [t for t, live in window.live.items() if _stopped(live) is not None]
        if finished or since_flush >= settings.flush_every:
            store.flush_all(list(window.logs.values()))
            since_flush = 0
        _leave(store, window, tally, finished)
        publish(SweepTick(sweep.name, tick, tally.done, tally.threads, tally.steps))
        artifacts.step_done(tally.done)
        tick += 1


def _stopped(live: Live) -> StopReason | None:
    if live.failed is not None:
        return StopReason.FAILED
    return live.loop.stop_reason(datetime.now(UTC))


def _invoke(store: AkashicStore, settings: Settings, tick: int, batch: Batch) -> list[Outcome]:
    return invoke_together(store, settings, tick, batch.facet, batch.model, batch.calls)


def _refill(
    store: AkashicStore,
    sweep: SweepSpec,
    members: Iterator[Member],
    window: _Window,
    tally: _Tally,
    embeds: tuple[engine.Embed | None, engine.Embed | None],
    session: str | None,
) -> None:
    """Take threads in until the window is full or the sweep has none left: each resumed from
    its record; one that finished before is counted and left as it is."""
    while len(window.live) < sweep.max_concurrent:
        room = min(READ_CHUNK, sweep.max_concurrent - len(window.live))
        chunk = list(islice(members, room))
        if not chunk:
            return
        runs = store.runs_of([m.thread for m in chunk])
        fresh = []
        for member in chunk:
            run = runs.get(member.thread)
            if run is not None and _finished_before(run, sweep):
                tally.done += 1
                tally.already += 1
                tally.steps_total += int(run["steps"] or 0)
                continue
            try:
                window.logs[member.thread] = store.open_thread(member.thread)
            except ThreadLocked:
                tally.busy += 1
                get_run_logger().warning(
                    "thread %s is running in another process; the sweep leaves it to it",
                    member.thread[:12],
                )
                continue
            fresh.append(member)
        steps = store.steps_of([m.thread for m in fresh])
        records = []
        now = datetime.now(UTC)
        for member in fresh:
            run = runs.get(member.thread)
            record = (
                RunRecord.from_row(run)
                if run is not None
                else RunRecord(
                    thread=member.thread,
                    realm=member.spec.network.realm,
                    kind="network",
                    name=member.spec.network.name,
                    spec=member.spec.model_dump_json(),
                    genesis=member.spec.genesis,
                    seed=member.spec.seed,
                    created_at=now,
                    session=session,
                )
            )
            record = record.but(
                spec=member.spec.model_dump_json(),
                status=RunStatus.RUNNING.value,
                flow_run_id=current_flow_run_id(),
                error=None,
            )
            records.append(record)
            loop = engine.resume(
                member.spec,
                member.thread,
                member.spec.genesis,
                record.created_at or now,
                steps[member.thread],
                embed=embeds[0],
                embed_images=embeds[1],
            )
            window.live[member.thread] = Live(
                loop,
                member.spec.network.name,
                member.spec.genesis,
                member.spec.seed,
                loop.next_step,
            )
            window.records[member.thread] = record
        store.put_runs([r.as_row() for r in records])
        done = [m.thread for m in fresh if _stopped(window.live[m.thread]) is not None]
        if done:  # resumed threads with nothing left to do
            store.flush_all([window.logs[thread] for thread in done])
            _leave(store, window, tally, done)


def _finished_before(run: dict[str, Any], sweep: SweepSpec) -> bool:
    """A thread with nothing left to do under this sweep's stop rule, known from its `runs` row
    alone: it fell into a loop or converged, or it already has the steps asked for (a sweep
    re-run with more steps takes those threads on, as `sandloop run` would)."""
    if run["status"] != RunStatus.COMPLETED or run["stop_reason"] not in FINAL_REASONS:
        return False
    if run["stop_reason"] != StopReason.MAX_STEPS:
        return True
    wanted = sweep.stop.max_steps
    return wanted is not None and int(run["steps"] or 0) >= wanted


def _leave(store: AkashicStore, window: _Window, tally: _Tally, threads: list[str]) -> None:
    """Threads that stopped (their steps already flushed): their `runs` rows in one write, then
    their locks let go."""
    if not threads:
        return
    rows = []
    for thread in threads:
        live = window.live.pop(thread)
        reason = _stopped(live) or StopReason.FAILED
        rows.append(
            window.records.pop(thread)
            .but(
                status=status_after(reason).value,
                stop_reason=reason.value,
                loop_length=live.loop.loop_length,
                steps=live.loop.next_step,
                error=live.failed,
            )
            .as_row()
        )
        tally.steps_total += live.loop.next_step
        tally.done += 1
        tally.failed += reason is StopReason.FAILED
        tally.reasons[reason.value] = tally.reasons.get(reason.value, 0) + 1
    store.put_runs(rows)
    for thread in threads:
        window.logs.pop(thread).close()


def _close(store: AkashicStore, window: _Window) -> None:
    """A sweep that stops early (killed, interrupted) keeps every step it took."""
    try:
        store.flush_all(list(window.logs.values()))
    finally:
        for log in window.logs.values():
            log.close()


def _thread_table(store: AkashicStore, sweep: SweepSpec) -> list[dict[str, Any]]:
    """The sweep's artifact: one row per thread (the first 1000)."""
    members = list(islice(sweep.members(), 1000))
    runs = store.runs_of([m.thread for m in members])
    table = []
    for member in members:
        run = runs.get(member.thread) or {}
        table.append(
            {
                "thread": member.thread[:12],
                "network": member.spec.network.name,
                "genesis": member.spec.genesis[:60],
                "seed": member.spec.seed,
                "status": run.get("status"),
                "stop": run.get("stop_reason"),
                "steps": run.get("steps"),
                "loop_length": run.get("loop_length"),
            }
        )
    return table
