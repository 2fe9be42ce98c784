"""A Socratic dialogue as one Prefect flow run; each turn a task run named `turn 4 · Theaetetus`.

Like a network run, the flow takes the thread: the spec and the turns so far are read from the
store, so a crashed dialogue resumes after its last recorded turn (a deployment passes the spec
file instead, and the dialogue is registered first). The `invocations` rows
are the record; `messages` is the conversation view of them, repaired on resume.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from prefect import State, flow, get_run_logger, runtime
from prefect.states import Failed
from prefect.tasks import exponential_backoff

from sandloop import api
from sandloop.config import Settings
from sandloop.dialogues import engine
from sandloop.dialogues.spec import DialogueSpec, load_dialogue
from sandloop.display import excerpt
from sandloop.flows.artifacts import RunArtifacts, label_flow_run, run_tags
from sandloop.flows.home import open_home, resolve_seed
from sandloop.keys import derive_seed
from sandloop.models import registry
from sandloop.models.base import CallContext, ModelInput, ModelOutput
from sandloop.models.errors import ModelError
from sandloop.progress import StepEvent, publish
from sandloop.records import CallAddress, call_row, dumps
from sandloop.specs import SpecError
from sandloop.storage.store import AkashicStore, NotFound
from sandloop.tasks.invoke import invoke_model


@dataclass(frozen=True)
class DialogueSummary:
    thread: str
    name: str
    status: str  # completed | failed
    stop_reason: str  # max_turns | sentinel | judge | repeat | budget | failed
    turns: int
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


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
    from sandloop.storage.store import sql_str

    have = set(store.select("messages", f"thread = {sql_str(thread)}")["turn"].tolist())
    missing = [t for t in turns if t.turn not in have]
    if missing:
        steps = store.steps(thread)
        ok = steps[(steps["status"] == "ok") & steps["step"].isin([t.turn for t in missing])]
        keys = dict(zip(ok["step"].astype(int), ok["key"], strict=True))
        store.upsert(
            "messages", [_message_row(spec, thread, str(keys[t.turn]), t, None) for t in missing]
        )


def _actor_params(spec: DialogueSpec, actor: str, temperature: float) -> dict[str, Any]:
    chosen = spec.actor(actor)
    info = registry.lookup(chosen.model)
    merged = {**info.default_params, **chosen.params}
    if "temperature" in info.params_model.model_fields:
        merged["temperature"] = temperature
    return info.params_model.model_validate(merged).model_dump()


def _message_row(
    spec: DialogueSpec, thread: str, key: str, turn: engine.Turn, verdict: Any
) -> dict[str, Any]:
    return {
        "key": key,
        "thread": thread,
        "realm": spec.realm,
        "turn": turn.turn,
        "actor": turn.actor,
        "model": spec.actor(turn.actor).model,
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
    from sandloop.recipes.spec import load_recipe

    assert spec.judge is not None
    recipe = load_recipe(spec.judge.recipe, settings.local_dir, spec.judge.model)
    text = f"Question: {spec.question}\n\n" + "\n\n".join(f"{t.actor}: {t.content}" for t in turns)
    result = run_stage(store, settings, recipe, text, {}, seed, session)
    if result["error"] is not None:
        get_run_logger().warning(
            "the judge gave no verdict after turn %d: %s", len(turns) - 1, result["error"]
        )
        return None
    parsed = result["parsed"]
    return parsed if isinstance(parsed, dict) else None


def _stops(spec: DialogueSpec, verdict: dict[str, Any] | None) -> bool:
    if verdict is None or spec.judge is None:
        return False
    if verdict.get("verdict") == "stop":
        return True
    threshold, score = spec.judge.stop_at_score, verdict.get("score")
    return threshold is not None and isinstance(score, int | float) and score >= threshold


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
    settings, store = open_home(home)
    if thread is None:
        if spec is None:
            raise SpecError("dialogue: give a thread to resume, or spec: a dialogue file")
        dialogue = load_dialogue(Path(spec), question)
        thread = api.register_dialogue(store, dialogue, resolve_seed(seed), session)
    run = store.get_run(thread)
    if run is None:
        raise NotFound(f"no dialogue with thread {thread}; start it with `sandloop dialogue run`")
    return _run_turns(store, settings, thread, run)


def _run_turns(store: AkashicStore, settings: Settings, thread: str, run: dict[str, Any]) -> Any:
    spec = DialogueSpec.model_validate_json(run["spec"])
    seed = run["seed"]
    session = run.get("session")
    invoke = invoke_model.with_options(
        task_run_name="turn {step} · {facet}",
        retries=settings.retries,
        retry_delay_seconds=exponential_backoff(backoff_factor=settings.retry_backoff_s),
    )
    flow_run_id = str(runtime.flow_run.id or "") or None
    if run["status"] == "completed" and run["stop_reason"]:
        return DialogueSummary(
            thread, spec.name, "completed", str(run["stop_reason"]), int(run["steps"])
        ).as_dict()
    log = store.open_thread(thread)
    turns = recorded_turns(store, thread)
    _repair_messages(store, spec, thread, turns)
    first_turn = len(turns)
    label_flow_run(tags=run_tags("dialogue", spec.realm, thread, session))
    artifacts = RunArtifacts("dialogue", thread, spec.stop.max_turns, first_turn)
    store.put_run({**run, "status": "running", "flow_run_id": flow_run_id, "error": None})
    reason, error, tokens = "max_turns", None, 0
    try:
        while True:
            turn = len(turns)
            if turn >= spec.stop.max_turns:
                reason = "max_turns"
                break
            actor = engine.speaker(spec, turn)
            model = spec.actor(actor).model
            temperature = spec.temperature.at(turn)
            messages = engine.view_for(spec, actor, turns)
            address = CallAddress("dialogue", spec.realm, thread, turn, actor, model)
            params = _actor_params(spec, actor, temperature)
            step_seed = derive_seed(seed, thread, turn) if seed is not None else None
            text = engine.transcript(messages, actor)
            started = datetime.now(UTC)
            state: State[ModelOutput] = invoke(
                turn,
                actor,
                model,
                ModelInput("text", text=text, messages=tuple(messages)),
                params,
                CallContext(step_seed, address.step_key, index=engine.own_turns(turns, actor)),
                settings,
                return_state=True,
            )
            finished = datetime.now(UTC)
            meta: dict[str, Any] = {"actor": actor, "temperature": temperature, "turn": turn}
            common: dict[str, Any] = {
                "input_text": text,
                "params": params,
                "seed": step_seed,
                "started_at": started,
                "finished_at": finished,
                "flow_run_id": flow_run_id,
                "task_run_id": str(state.state_details.task_run_id or "") or None,
            }
            if not state.is_completed():
                failure = state.result(raise_on_failure=False)
                error = failure.one_line() if isinstance(failure, ModelError) else repr(failure)
                kind = getattr(failure, "kind", type(failure).__name__)
                log.append(
                    call_row(
                        address,
                        **common,
                        status="failed",
                        output=None,
                        error=error,
                        error_type=kind,
                        metadata=meta,
                    )
                )
                reason = "failed"
                break
            output = state.result()
            content = (output.text or "").strip()
            meta.update({"usage": output.usage} if output.usage else {})
            meta.update(output.metadata)
            row = call_row(address, **common, status="ok", output=content, metadata=meta)
            log.append(row)
            store.flush(log)  # a turn takes seconds; keep messages and invocations in step
            repeated = spec.stop.stop_on_repeat and engine.repeats(turns, content)
            turns.append(engine.Turn(turn, actor, content, temperature))
            tokens += int(output.usage.get("output_tokens") or 0)
            verdict = None
            if spec.judge is not None and (turn + 1) % spec.judge.every == 0:
                verdict = _judge(store, settings, spec, turns, seed, session)
            store.upsert("messages", [_message_row(spec, thread, row["key"], turns[-1], verdict)])
            publish(
                StepEvent(thread, turn, actor, "ok", row["latency_ms"], excerpt(content, "text"))
            )
            artifacts.step_done(turn + 1)
            if engine.hits_sentinel(spec, content):
                reason = "sentinel"
            elif _stops(spec, verdict):
                reason = "judge"
            elif repeated:
                reason = "repeat"
            elif spec.stop.max_output_tokens and tokens >= spec.stop.max_output_tokens:
                reason = "budget"
            else:
                continue
            break
    finally:
        store.flush(log)
        log.close()
    summary = DialogueSummary(
        thread,
        spec.name,
        "failed" if reason == "failed" else "completed",
        reason,
        len(turns),
        error,
    )
    store.put_run(
        {
            **run,
            "status": summary.status,
            "stop_reason": reason,
            "steps": len(turns),
            "error": error,
            "flow_run_id": flow_run_id,
        }
    )
    title = f"{spec.name} · thread {thread[:6]} · turns {first_turn}–{len(turns) - 1}"
    conversation = "\n\n".join(
        [f"# {spec.question}"]
        + [
            f"**{t.turn} · {t.actor}** (temperature {t.temperature:g})\n\n{t.content}"
            for t in turns
        ]
        + ([f"**stopped**: {reason}" + (f" ({error})" if error else "")])
    )
    artifacts.finish(store.steps(thread), store, title, markdown=conversation)
    label_flow_run(name=title)
    if summary.status == "failed":
        return Failed(message=f"turn {len(turns)}: {error}", data=summary.as_dict())
    return summary.as_dict()
