"""Recipes and pipelines of recipes as Prefect flows; each recipe is a task, each model call a
nested task run.

A recipe run is addressed like everything else: realm = the recipe (name, version, template,
model…), thread = its inputs and seed, step = the call's position, facet = model#role. The same
inputs, version and seed are a cache hit twice over: Prefect's cache (keyed by the thread) skips
the task, and if Prefect's result is gone the store's completed record is returned without a
model call.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, runtime, task
from prefect.context import TaskRunContext
from prefect.states import Failed

from sandloop.config import Settings
from sandloop.errors import SandloopError
from sandloop.flows.artifacts import label_flow_run, recipe_artifacts, run_tags
from sandloop.flows.driver import Driver, current_flow_run_id, value_of
from sandloop.flows.home import open_home
from sandloop.loops.recipe.context import prompt_for, resolve_context
from sandloop.loops.recipe.engine import RefineLoop
from sandloop.loops.recipe.spec import RecipeSpec, load_pipeline, load_recipe
from sandloop.loops.spec_check import stored
from sandloop.loops.status import RunStatus, StopReason
from sandloop.records import dumps
from sandloop.registration import RunRecord, put_record
from sandloop.scoring import critic_row
from sandloop.storage.store import AkashicStore
from sandloop.summaries import PipelineResult, RecipeResult
from sandloop.tasks.invoke import retry_only_retryable


class RecipeFailed(SandloopError, RuntimeError):
    """The output never validated, or a model failed in a way retries could not fix. Never
    retryable: the calls that could be retried already were."""

    retryable = False
    exit_code = 1  # a failed run, not bad input

    def __init__(self, message: str, result: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.result = result


def _cache_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    return f"recipe-{parameters['thread']}-{parameters['home']}"


def execute_recipe(
    store: AkashicStore,
    settings: Settings,
    spec: RecipeSpec,
    values: dict[str, Any],
    seed: int | None,
    session: str | None = None,
    phase: str | None = None,
) -> RecipeResult:
    """Run (or return the recorded result of) one recipe on resolved slot values. ``phase``
    marks a run that is not training data unless asked for: ``judge``, ``moderation``."""
    thread = spec.thread(values, seed)
    recorded = recorded_result(store, spec, thread)
    if recorded is not None:
        return recorded
    record = replace(new_record(spec, thread, values, seed, session), phase=phase)
    put_record(store, record)
    loop = RefineLoop(spec, prompt_for(spec, values), thread, seed)
    log = store.open_thread(thread)
    try:
        driver = Driver(store, log, settings, events=False, keep_rows=True)
        session_ = driver.run(loop)
        if session_.reason is StopReason.FAILED:
            put_record(store, failed_record(spec, record, str(session_.error), session_.rows))
            raise RecipeFailed(f"{spec.name}: {session_.error}")
        final = final_row(loop, session_.rows)
        log.append(final)
        store.flush(log)
    finally:
        log.close()
    critiques = critique_rows(loop, session_.rows)
    if critiques:
        store.upsert("scores", critiques)
    put_record(store, finished_record(spec, record, loop))
    return result_of(spec, loop, str(final["key"]))


def new_record(
    spec: RecipeSpec, thread: str, values: dict[str, Any], seed: int | None, session: str | None
) -> RunRecord:
    return RunRecord(
        thread=thread,
        realm=spec.realm,
        kind="recipe",
        name=spec.name,
        spec=spec.model_dump_json(),
        genesis=dumps(values),
        seed=seed,
        status=RunStatus.RUNNING.value,
        created_at=datetime.now(UTC),
        flow_run_id=current_flow_run_id(),
        session=session,
    )


def final_row(loop: RefineLoop, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The answer the run ends on, recorded again with ``final`` in its metadata."""
    final = loop.final()
    assert final is not None
    row = next(r for r in rows if r["step"] == final.index)
    meta = {**json.loads(row["metadata"]), **loop.details(final, final=True)}
    return {**row, "metadata": dumps(meta)}


def failed_record(
    spec: RecipeSpec, record: RunRecord, error: str, rows: list[dict[str, Any]]
) -> RunRecord:
    """A run a model failed: retries could not help it."""
    return record.but(status=RunStatus.FAILED.value, error=f"{spec.name}: {error}", steps=len(rows))


def finished_record(spec: RecipeSpec, record: RunRecord, loop: RefineLoop) -> RunRecord:
    """A run that stopped on its own: accepted, or out of refine rounds."""
    outcome = loop.outcome()
    error = None
    if not outcome.accepted:
        rounds = spec.refine.max_rounds if spec.refine else 0
        error = (
            f"{spec.name} v{spec.version}: the output never validated in {rounds} refine "
            f"rounds: {'; '.join(outcome.errors)}"
        )
    return record.but(
        status=RunStatus.COMPLETED.value if outcome.accepted else RunStatus.FAILED.value,
        stop_reason=outcome.status,
        steps=len(outcome.attempts),
        error=error,
    )


def result_of(spec: RecipeSpec, loop: RefineLoop, final_key: str | None) -> RecipeResult:
    outcome = loop.outcome()
    return RecipeResult(
        loop.thread,
        spec.name,
        spec.version,
        outcome.status,
        outcome.output,
        outcome.parsed,
        outcome.errors,
        outcome.score,
        len(outcome.attempts),
        final_key=final_key,
    )


def critique_rows(loop: RefineLoop, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The critics' scores of the answers they critiqued, as `scores` rows."""
    by_step = {int(r["step"]): r for r in rows}
    scored = [
        critic_row(by_step[answer.index], by_step[critique.index], critique.score, critique.model)
        for answer, critique in loop.critiques()
        if answer.index in by_step and critique.index in by_step
    ]
    return [row for row in scored if row is not None]


def recorded_result(store: AkashicStore, spec: RecipeSpec, thread: str) -> RecipeResult | None:
    """A finished recipe run's result, read back from the store (None if it never finished)."""
    return recorded_results(store, spec, [thread]).get(thread)


def recorded_results(
    store: AkashicStore, spec: RecipeSpec, threads: list[str]
) -> dict[str, RecipeResult]:
    """`recorded_result` of many runs, with one read of `runs` and one of their calls."""
    import orjson

    runs = store.runs_of(threads)
    done = [
        t
        for t, run in runs.items()
        if run["status"] in ("completed", "failed") and run["stop_reason"]
    ]
    results = {}
    for thread, calls in store.steps_of(done).items():
        finals = [
            (row, meta)
            for row in calls.itertuples()
            if (meta := orjson.loads(row.metadata or "{}")).get("final")
        ]
        if not finals:
            continue
        row, meta = finals[-1]
        results[thread] = RecipeResult(
            thread,
            spec.name,
            spec.version,
            str(runs[thread]["stop_reason"]),
            str(row.output),
            meta.get("parsed"),
            list(meta.get("validation_errors") or []),
            meta.get("score"),
            len(calls),
            cached=True,
            final_key=str(row.key),
        )
    return results


# A retry condition (even one that always declines) keeps Prefect from logging an expected
# failure with a traceback; the model calls inside retry on their own.
@task(
    task_run_name="recipe {name} v{version}",
    retries=1,
    retry_condition_fn=retry_only_retryable,
    cache_key_fn=_cache_key,
    persist_result=True,
    result_serializer="json",
)
def recipe_task(
    name: str,
    version: str,
    thread: str,
    home: str,
    spec_json: str,
    values: dict[str, Any],
    seed: int | None,
    session: str | None = None,
    phase: str | None = None,
) -> dict[str, Any]:
    settings, store, catalog = open_home(home)
    spec = stored(spec_json, RecipeSpec, catalog)
    result = execute_recipe(store, settings, spec, values, seed, session, phase)
    if not result.accepted:
        rounds = spec.refine.max_rounds if spec.refine else 0
        raise RecipeFailed(
            f"{spec.name} v{spec.version}: the output never validated ({rounds} refine rounds): "
            f"{'; '.join(result.errors)}",
            result.as_dict(),
        )
    return result.as_dict()


def search_for(store: AkashicStore, settings: Settings) -> Any:
    def search(query: str, k: int) -> list[str]:
        from sandloop.embedding.embedders import embedder_from
        from sandloop.embedding.service import catch_up
        from sandloop.embedding.service import search as search_store

        embedder = embedder_from(settings)
        catch_up(store, embedder, settings=settings)  # runs leave their embeddings to searches
        hits = search_store(store, embedder, query, k=k, settings=settings)
        return [str(text) for text in hits["output"]]

    return search


def run_stage(
    store: AkashicStore,
    settings: Settings,
    spec: RecipeSpec,
    input_text: str,
    context: dict[str, Any],
    seed: int | None,
    session: str | None,
    previous: dict[str, str] | None = None,
    phase: str | None = None,
) -> RecipeResult:
    """One recipe as a task run of the current flow: its result, or (``error`` set) why it
    failed, with every call recorded either way."""
    values = resolve_context(
        spec, input_text, context, seed, previous, search=search_for(store, settings)
    )
    thread = spec.thread(values, seed)
    state = recipe_task(
        spec.name,
        spec.version,
        thread,
        str(settings.home),
        spec.model_dump_json(),
        values,
        seed,
        session,
        phase,
        return_state=True,
    )
    if not state.is_completed():
        failure = value_of(state)
        if not isinstance(failure, RecipeFailed):
            raise failure if isinstance(failure, Exception) else RecipeFailed(str(failure))
        failed = (
            failure.result
            or RecipeResult(
                thread, spec.name, spec.version, "failed", None, None, [], None, 0
            ).as_dict()
        )
        return RecipeResult.from_dict({**failed, "error": str(failure), "cached": False})
    # A dict: Prefect's cache keeps the task's result as JSON.
    result: dict[str, Any] = value_of(state)
    cached = bool(result.get("cached")) or state.name == "Cached"
    return RecipeResult.from_dict({**result, "cached": cached, "error": None})


def _recipe_run_name() -> str:
    params = runtime.flow_run.parameters
    recipe = str(params.get("recipe", ""))
    if recipe.lstrip().startswith("{"):
        recipe = str(json.loads(recipe).get("name", "python"))
    return f"recipe {Path(recipe).stem} · seed {params.get('seed')}"


@flow(
    name="recipe", flow_run_name=_recipe_run_name, persist_result=False, validate_parameters=False
)
def recipe_flow(
    recipe: str,
    input: str,
    context: dict[str, Any] | None = None,
    seed: int | None = None,
    model: str | None = None,
    session: str | None = None,
    home: str | None = None,
    phase: str | None = None,
) -> Any:
    """Returns the result; a recipe whose output never validated ends the flow run Failed, with
    the reason as its state message and the result (every round recorded) as its data."""
    settings, store, catalog = open_home(home)
    if recipe.lstrip().startswith("{"):  # a recipe written in Python, passed as its JSON
        spec = stored(recipe, RecipeSpec, catalog)
    else:
        spec = load_recipe(recipe, catalog, model)
    result = run_stage(
        store, settings, spec, input, dict(context or {}), seed, session, phase=phase
    )
    return _finish(store, spec.realm, [result], result, f"{spec.name} v{spec.version}", session)


def _finish(
    store: AkashicStore,
    realm: str,
    stages: list[RecipeResult],
    result: RecipeResult | PipelineResult,
    title: str,
    session: str | None,
) -> Any:
    """Label the flow run, publish its artifacts, and fail it if the result is a failure."""
    thread = stages[-1].thread if stages else ""
    status = "failed" if result.error else stages[-1].status if stages else "empty"
    label_flow_run(
        name=f"{title} · thread {thread[:6]} · {status}",
        tags=run_tags("recipe", realm, thread, session),
    )
    recipe_artifacts(store, stages, f"{title} · {status}")
    if result.error:
        return Failed(message=str(result.error), data=result)
    return result


@flow(name="recipe-pipeline", persist_result=False, validate_parameters=False)
def pipeline_flow(
    pipeline: str,
    input: str,
    seed: int | None = None,
    session: str | None = None,
    home: str | None = None,
) -> Any:
    """Each stage's accepted output is the next stage's input (JSON if it was parsed); a stage
    that fails ends the flow run Failed, with the stages so far as its data."""
    settings, store, catalog = open_home(home)
    spec = load_pipeline(Path(pipeline), catalog)
    outputs: dict[str, str] = {}
    stages: list[RecipeResult] = []
    text = input
    title, realm = f"pipeline {spec.name}", ""
    for stage in spec.stages:
        recipe = load_recipe(stage.recipe, catalog, stage.model)
        realm = recipe.realm
        result = run_stage(store, settings, recipe, text, stage.context, seed, session, outputs)
        stages.append(result)
        if result.error is not None:
            failed = PipelineResult(spec.name, None, stages, result.error)
            return _finish(store, realm, stages, failed, title, session)
        parsed = result.parsed
        text = parsed if isinstance(parsed, str) else dumps(parsed)
        outputs[recipe.name] = text
    done = PipelineResult(spec.name, text, stages, None)
    return _finish(store, realm, stages, done, title, session)
