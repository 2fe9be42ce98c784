"""A Socratic dialogue as one Prefect flow run; each turn a task run named `turn 4 · Theaetetus`.

Like a network run, the flow takes the thread: the spec and the turns so far are read from the
store, so a crashed dialogue resumes after its last recorded turn (a deployment passes the spec
file instead, and the dialogue is registered first). The `invocations` rows
are the record; `messages` is the conversation view of them, repaired on resume.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from prefect import flow, get_run_logger, runtime
from prefect.states import Cancelled, Failed

from sandloop.config import Settings
from sandloop.flows.artifacts import RunArtifacts, label_flow_run, run_tags
from sandloop.flows.cancelling import cancelled_meanwhile
from sandloop.flows.driver import Driver, current_flow_run_id
from sandloop.flows.home import open_home, resolve_seed
from sandloop.loops.dialogue import engine
from sandloop.loops.dialogue.spec import DialogueSpec, load_dialogue
from sandloop.loops.protocol import Call, Outcome
from sandloop.loops.spec_check import stored
from sandloop.loops.spec_files import SpecError
from sandloop.loops.status import RunStatus, StopReason, status_after
from sandloop.models.registry import catalog_for
from sandloop.records import dumps
from sandloop.registration import RunRecord, get_record, put_record, register_dialogue
from sandloop.storage.store import AkashicStore, NotFound, sql_str
from sandloop.summaries import DialogueSummary


def _flow_run_name() -> str:
    thread = runtime.flow_run.parameters.get("thread")
    return f"dialogue · thread {str(thread)[:8]}" if thread else "dialogue · new thread"


def recorded_turns(store: AkashicStore, thread: str) -> list[engine.Turn]:
    rows = store.steps(thread)
    if rows.empty:
        return []
    ok = rows[(rows["status"] == "ok") & (rows["kind"] == "dialogue")].sort_values("step")
    turns: list[engine.Turn] = []
    for row in ok.itertuples():
        if int(row.step) != len(turns):
            break  # a gap follows a failure: resume from it
        meta = orjson.loads(row.metadata or "{}")
        turns.append(
            engine.Turn(int(row.step), str(row.facet), str(row.output), meta["temperature"])
        )
    return turns


def _repair_messages(
    store: AkashicStore, spec: DialogueSpec, thread: str, turns: list[engine.Turn]
) -> None:
    """A crash between a turn's invocation and its message row leaves the view short: refill
    it from the invocations (the judge's verdict for that turn is not re-asked)."""
    have = set(store.select("messages", f"thread = {sql_str(thread)}")["turn"].tolist())
    missing = [t for t in turns if t.turn not in have]
    if missing:
        steps = store.steps(thread)
        ok = steps[(steps["status"] == "ok") & steps["step"].isin([t.turn for t in missing])]
        keys = dict(zip(ok["step"].astype(int), ok["key"], strict=True))
        store.upsert(
            "messages", [_message_row(spec, thread, str(keys[t.turn]), t, None) for t in missing]
        )


def _message_row(
    spec: DialogueSpec, thread: str, key: str, turn: engine.Turn, verdict: Any
) -> dict[str, Any]:
    return {
        "key": key,
        "thread": thread,
        "realm": spec.realm,
        "turn": turn.turn,
        "actor": turn.actor,
        "model": spec.model_of(turn.actor),
        "content": turn.content,
        "temperature": turn.temperature,
        "verdict": dumps(verdict) if verdict is not None else None,
        "created_at": datetime.now(UTC),
    }


def _judge(
    store: AkashicStore,
    settings: Settings,
    spec: DialogueSpec,
    turns: list[engine.Turn],
    seed: int | None,
    session: str | None,
) -> dict[str, Any] | None:
    """The judge's verdict, or None (and a warning) if it could not give one."""
    from sandloop.flows.recipe import run_stage
    from sandloop.loops.recipe.spec import load_recipe

    assert spec.judge is not None
    recipe = load_recipe(spec.judge.recipe, catalog_for(settings), spec.judge.model)
    text = f"Question: {spec.question}\n\n" + "\n\n".join(f"{t.actor}: {t.content}" for t in turns)
    result = run_stage(store, settings, recipe, text, {}, seed, session)
    if result.error is not None:
        get_run_logger().warning(
            "the judge gave no verdict after turn %d: %s", len(turns) - 1, result.error
        )
        return None
    parsed = result.parsed
    return parsed if isinstance(parsed, dict) else None


@flow(
    name="dialogue", flow_run_name=_flow_run_name, persist_result=False, validate_parameters=False
)
def dialogue_flow(
    thread: str | None = None,
    home: str | None = None,
    spec: str | None = None,
    question: str | None = None,
    seed: int | str | None = None,
    session: str | None = None,
) -> Any:
    """Runs or resumes ``thread``; without one, registers the dialogue in the ``spec`` file
    (optionally on another ``question``), as deployments do. ``seed: scheduled`` seeds it from
    the flow run's scheduled time, so each firing of a schedule is a new dialogue."""
    settings, store, catalog = open_home(home)
    if thread is None:
        if spec is None:
            raise SpecError("dialogue: give a thread to resume, or spec: a dialogue file")
        dialogue = load_dialogue(Path(spec), catalog, question)
        thread = register_dialogue(store, dialogue, resolve_seed(seed), session)
    run = get_record(store, thread)
    if run is None:
        raise NotFound(f"no dialogue with thread {thread}; start it with `sandloop dialogue run`")
    return _run_turns(store, settings, thread, run)


def _run_turns(store: AkashicStore, settings: Settings, thread: str, run: RunRecord) -> Any:
    spec = stored(run.spec, DialogueSpec, catalog_for(settings))
    if run.status == RunStatus.COMPLETED and run.stop_reason:
        return DialogueSummary(thread, spec.name, run.status, str(run.stop_reason), run.steps)
    log = store.open_thread(thread)
    try:
        turns = recorded_turns(store, thread)
        _repair_messages(store, spec, thread, turns)
        loop = engine.DialogueLoop(spec, thread, run.seed, turns)
        first_turn = len(turns)
        label_flow_run(tags=run_tags("dialogue", spec.realm, thread, run.session))
        running = run.but(
            status=RunStatus.RUNNING.value, flow_run_id=current_flow_run_id(), error=None
        )
        put_record(store, running)

        def after_turn(call: Call, outcome: Outcome, row: dict[str, Any]) -> None:
            """The judge speaks once the turn is recorded; then the turn joins `messages`."""
            if not outcome.ok:
                return
            if loop.judge_due():
                loop.take_verdict(_judge(store, settings, spec, loop.turns, run.seed, run.session))
            message = _message_row(spec, thread, row["key"], loop.turns[-1], loop.verdict)
            store.upsert("messages", [message])

        driver = Driver(
            store,
            log,
            settings,
            task_run_name="turn {step} · {facet}",
            flush_every=1,  # a turn takes seconds; keep messages and invocations in step
            artifacts=RunArtifacts("dialogue", thread, spec.stop.max_turns, first_turn),
            on_recorded=after_turn,
            cancellable=True,
        )
        session = driver.run(loop)
    finally:
        log.close()
    reason, error = session.reason, session.error
    summary = DialogueSummary(
        thread, spec.name, status_after(reason).value, reason.value, len(turns), error
    )
    put_record(
        store,
        running.but(status=summary.status, stop_reason=reason.value, steps=len(turns), error=error),
    )
    title = f"{spec.name} · thread {thread[:6]} · turns {first_turn}–{len(turns) - 1}"
    conversation = "\n\n".join(
        [f"# {spec.question}"]
        + [f"**{t.turn} · {t.actor}**{_heat(t.temperature)}\n\n{t.content}" for t in turns]
        + ([f"**stopped**: {reason.value}" + (f" ({error})" if error else "")])
    )
    if driver.artifacts is not None:
        driver.artifacts.finish(store.steps(thread), store, title, markdown=conversation)
    label_flow_run(name=title)
    if reason is StopReason.FAILED:
        return Failed(message=f"turn {len(turns)}: {error}", data=summary)
    if reason is StopReason.CANCELLED:
        return Cancelled(message=f"cancelled at turn {len(turns)}", data=summary)
    if cancelled_meanwhile(current_flow_run_id()):
        return Cancelled(message=f"cancelled after its last turn ({summary.status})", data=summary)
    return summary


def _heat(temperature: float | None) -> str:
    return "" if temperature is None else f" (temperature {temperature:g})"
