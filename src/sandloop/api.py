"""The Python API: what the CLI does, callable from notebooks and scripts.

from sandloop import api
summary = api.run_network(api.load_run_spec("examples/networks/echo.yaml", genesis="hi", seed=7))
api.list_runs()                      # a pandas DataFrame, newest first
api.run_steps(summary.thread[:8])    # one run's steps as a DataFrame
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from sandloop.config import Settings
from sandloop.loops.dialogue.spec import DialogueSpec
from sandloop.loops.network.spec import RunSpec
from sandloop.registration import (
    load_run_spec,
    register_dialogue,
    run_spec_from,
    thread_of,
)
from sandloop.storage.store import AkashicStore
from sandloop.storage.wal import ThreadLocked, locked_message
from sandloop.summaries import DialogueSummary, PipelineResult, RecipeResult, RunSummary

__all__ = [
    "create_snapshot",
    "dialogue_messages",
    "ensure_idle",
    "export_snapshot",
    "list_runs",
    "load_run_spec",
    "open_store",
    "run_dialogue",
    "run_embeddings",
    "run_network",
    "run_pipeline",
    "run_recipe",
    "run_spec_from",
    "run_steps",
    "settings_for",
    "thread_of",
]


def settings_for(home: Path | str | None = None) -> Settings:
    """Settings for a home folder; also loads that home's models file into the registry."""
    from sandloop.models import registry

    settings = Settings.for_home(home)
    registry.configure(settings.models_file_path, settings.local_dir)
    return settings


def open_store(home: Path | str | None = None, *, readonly: bool = False) -> AkashicStore:
    """The home's store; ``readonly`` for reads, which create nothing and work on a read-only
    disk."""
    settings = settings_for(home)
    return AkashicStore.for_settings(settings, readonly=readonly)


def ensure_idle(store: AkashicStore, spec: RunSpec) -> str:
    """The spec's thread, refused (ThreadLocked) while another process runs it: checked before
    any Prefect start-up or model load; the flow checks again under the lock."""
    thread = thread_of(spec)
    if store.is_live(thread):
        raise ThreadLocked(locked_message(thread))
    return thread


def run_network(
    spec: RunSpec, home: Path | str | None = None, session: str | None = None
) -> RunSummary:
    """Run (or resume) a network run as one Prefect flow run; returns its summary."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    from sandloop.flows.network import network_run

    settings = settings_for(home)
    store = AkashicStore.for_settings(settings)
    thread = ensure_idle(store, spec)
    # The heartbeat thread makes every flow run wait ~1 s at its end and has no env switch.
    with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        state = network_run(
            thread=thread,
            home=str(settings.home),
            spec=spec.model_dump_json(),
            session=session,
            return_state=True,
        )
    return _summary_of(state, RunSummary)


SummaryT = TypeVar("SummaryT")


def _summary_of(state: Any, kind: type[SummaryT]) -> SummaryT:
    """A flow's summary, whether it ended Completed or Failed (a failed run is an answer, not an
    exception); an exception that crashed the flow is raised."""
    result = state.result(raise_on_failure=False)
    if isinstance(result, BaseException):
        raise result
    if not isinstance(result, kind):
        raise TypeError(f"the flow returned {type(result).__name__}, not {kind.__name__}")
    return result


def list_runs(home: Path | str | None = None) -> pd.DataFrame:
    return open_store(home, readonly=True).runs()


def run_steps(thread_prefix: str, home: Path | str | None = None) -> pd.DataFrame:
    """One run's steps; refuses (DamagedStore) when the store lost steps the run recorded."""
    store = open_store(home, readonly=True)
    run = store.find_run(thread_prefix)
    steps = store.steps(str(run["thread"]))
    store.check_recorded(run, steps)
    return steps


def run_embeddings(
    thread_prefix: str, embedding_model: str | None = None, home: Path | str | None = None
) -> tuple[pd.DataFrame, Any]:
    """One run's steps joined with their vectors (rows without a vector are dropped).

    Returns (steps, vectors) with ``vectors[i]`` the L2-normalised embedding of ``steps.iloc[i]``;
    the embedding model defaults to the one most of the run's vectors were made with.
    """
    import numpy as np

    from sandloop.storage.store import sql_str

    store = open_store(home, readonly=True)
    thread = str(store.find_run(thread_prefix)["thread"])
    vectors = store.select("embeddings", f"thread = {sql_str(thread)}")
    if embedding_model is None and not vectors.empty:
        embedding_model = str(vectors["embedding_model"].mode().iloc[0])
    vectors = vectors[vectors["embedding_model"] == embedding_model]
    steps = store.steps(thread).merge(vectors[["key", "vector"]], on="key", how="inner")
    matrix = np.asarray(steps.pop("vector").tolist(), dtype=np.float32)
    return steps.reset_index(drop=True), matrix


def run_dialogue(
    spec: DialogueSpec,
    seed: int | None = None,
    home: Path | str | None = None,
    session: str | None = None,
) -> DialogueSummary:
    """Run (or resume) a dialogue as one Prefect flow run; returns its summary."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    from sandloop.flows.dialogue import dialogue_flow

    settings = settings_for(home)
    store = AkashicStore.for_settings(settings)
    thread = register_dialogue(store, spec, seed, session)
    with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        state = dialogue_flow(thread=thread, home=str(settings.home), return_state=True)
    return _summary_of(state, DialogueSummary)


def dialogue_messages(thread_prefix: str, home: Path | str | None = None) -> pd.DataFrame:
    """A dialogue's turns in order: actor, content, temperature, the judge's verdict."""
    from sandloop.storage.store import sql_str

    store = open_store(home, readonly=True)
    thread = str(store.find_run(thread_prefix)["thread"])
    return (
        store.select("messages", f"thread = {sql_str(thread)}")
        .sort_values("turn")
        .reset_index(drop=True)
    )


def run_recipe(
    recipe: Any,
    input_text: str,
    *,
    context: dict[str, Any] | None = None,
    seed: int | None = None,
    model: str | None = None,
    session: str | None = None,
    home: Path | str | None = None,
) -> RecipeResult:
    """Run a recipe (a name, a YAML path, or a ``RecipeSpec`` built in Python) as a Prefect flow
    run; returns its result."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    from sandloop.flows.recipe import recipe_flow

    settings = settings_for(home)
    with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        if not isinstance(recipe, str):
            recipe = recipe.model_dump_json()
        state = recipe_flow(
            recipe, input_text, context, seed, model, session, str(settings.home), return_state=True
        )
    return _summary_of(state, RecipeResult)


def run_pipeline(
    pipeline: Path | str,
    input_text: str,
    *,
    seed: int | None = None,
    session: str | None = None,
    home: Path | str | None = None,
) -> PipelineResult:
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    from sandloop.flows.recipe import pipeline_flow

    settings = settings_for(home)
    with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        state = pipeline_flow(
            str(pipeline), input_text, seed, session, str(settings.home), return_state=True
        )
    return _summary_of(state, PipelineResult)


def create_snapshot(name: str, home: Path | str | None = None, **selection: Any) -> dict[str, Any]:
    """Pin a selection of runs (realm, thread, session, kind, phase, since, until, status)."""
    from sandloop.exports import snapshot as snapshots

    return snapshots.create(open_store(home), name, snapshots.Selection(**selection))


def _output(out: Path | str) -> str:
    return str(out) if "://" in str(out) else str(Path(out).resolve())


def export_snapshot(
    name: str,
    formats: list[str],
    out: Path | str,
    home: Path | str | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Write a snapshot as datasets through the export flow; returns the manifest."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    from sandloop.flows.export import export_flow

    settings = settings_for(home)
    with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        manifest: dict[str, Any] = export_flow(
            name, list(formats), _output(out), home=str(settings.home), **options
        )
    return manifest
