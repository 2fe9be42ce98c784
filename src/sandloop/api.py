"""The Python API: what the CLI does, callable from notebooks and scripts.

from sandloop import api
summary = api.run_network(api.load_run_spec("examples/networks/echo.yaml", genesis="hi", seed=7))
api.list_runs()                      # a pandas DataFrame, newest first
api.run_steps(summary.thread[:8])    # one run's steps as a DataFrame
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar, Unpack

import pandas as pd

from sandloop.config import Settings
from sandloop.loops.dialogue.spec import DialogueSpec
from sandloop.loops.network.spec import RunSpec
from sandloop.loops.spec_files import SpecError
from sandloop.loops.sweep.spec import SweepSpec
from sandloop.loops.sweep.trajectories import Trajectories
from sandloop.models.registry import Catalog, catalog_for
from sandloop.registration import register_dialogue, thread_of
from sandloop.storage.store import AkashicStore
from sandloop.storage.wal import ThreadLocked, locked_message
from sandloop.summaries import (
    DialogueSummary,
    JudgeSummary,
    PipelineResult,
    RecipeResult,
    RunSummary,
    Started,
    SweepSummary,
    TracesWritten,
)

if TYPE_CHECKING:
    from sandloop.credentials import ResolvedKey
    from sandloop.embedding.embedders import Embedder
    from sandloop.embedding.service import EmbedReport
    from sandloop.exports.validate import Report as ValidationReport
    from sandloop.flows.background import Launcher
    from sandloop.loops.network.spec import NetworkSpec
    from sandloop.loops.recipe.spec import PipelineSpec, RecipeSpec
    from sandloop.storage.doctor import Finding
    from sandloop.storage.vector_index import VectorIndex
    from sandloop.work_queue import WorkQueue

__all__ = [
    "ExportChoices",
    "Trajectories",
    "cancel_run",
    "chat_messages",
    "chat_say",
    "check_sweep_name",
    "classify_session",
    "create_snapshot",
    "delete_snapshot",
    "deployable",
    "dialogue_from",
    "dialogue_messages",
    "embed",
    "end_chat",
    "end_session",
    "ensure_idle",
    "examine_store",
    "export_destination",
    "export_snapshot",
    "export_traces",
    "flow_run_state",
    "forget_message",
    "index_settings",
    "is_public",
    "label_run",
    "list_chats",
    "list_keys",
    "list_runs",
    "list_sessions",
    "list_snapshots",
    "list_sweeps",
    "load_dialogue",
    "load_embedder",
    "load_network",
    "load_pipeline",
    "load_recipe",
    "load_run_spec",
    "load_sweep",
    "model_catalog",
    "moderate",
    "newest_runs",
    "open_session",
    "open_store",
    "prepare_models",
    "publish_run",
    "rebuild_index",
    "recipe_file",
    "recipe_names",
    "remove_key",
    "run_dialogue",
    "run_embeddings",
    "run_network",
    "run_pipeline",
    "run_recipe",
    "run_spec_from",
    "run_steps",
    "run_sweep",
    "search",
    "serve",
    "session_runs",
    "set_key",
    "settings_for",
    "snapshot_runs",
    "start_chat",
    "start_dialogue",
    "start_export",
    "start_network",
    "start_recipe",
    "start_session",
    "sweep_report",
    "sweep_threads",
    "sweep_trajectories",
    "thread_of",
    "validate_export",
    "work_queue",
]


def settings_for(home: Path | str | None = None) -> Settings:
    """Settings for a home folder (``SANDLOOP_HOME`` or ~/.sandloop when None)."""
    return Settings.for_home(home)


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
    flow, parameters = _network_flow(spec, home, session)
    return _summary_of(_call(flow, parameters), RunSummary)


def start_network(
    spec: RunSpec,
    launcher: Launcher,
    home: Path | str | None = None,
    session: str | None = None,
) -> Started:
    """`run_network` in the background: the thread and flow-run id now, the run meanwhile."""
    flow, parameters = _network_flow(spec, home, session)
    launched = launcher.launch(flow, parameters)
    return Started("network", parameters["thread"], launched.flow_run_id, launched.done)


def _network_flow(
    spec: RunSpec, home: Path | str | None, session: str | None
) -> tuple[Any, dict[str, Any]]:
    from sandloop.flows.network import network_run

    settings = settings_for(home)
    thread = ensure_idle(AkashicStore.for_settings(settings), spec)
    return network_run, {
        "thread": thread,
        "home": str(settings.home),
        "spec": spec.model_dump_json(),
        "session": session,
    }


def _call(flow: Any, parameters: dict[str, Any]) -> Any:
    """A flow run in this thread, on the managed server when one answers; its final state."""
    from sandloop.flows.calling import flow_settings

    with flow_settings():
        return flow(**parameters, return_state=True)


SummaryT = TypeVar("SummaryT")


def _summary_of(state: Any, kind: type[SummaryT]) -> SummaryT:
    """A flow's summary, whether it ended Completed or Failed (a failed run is an answer, not an
    exception); an exception that crashed the flow is raised."""
    from sandloop.flows.driver import value_of

    result = value_of(state)
    if isinstance(result, BaseException):
        raise result
    if not isinstance(result, kind):
        raise TypeError(f"the flow returned {type(result).__name__}, not {kind.__name__}")
    return result


def list_runs(home: Path | str | None = None, *, store: AkashicStore | None = None) -> pd.DataFrame:
    """Every run. A long-lived reader (the HTTP API) passes the ``store`` it keeps open, here
    and in the other listings: opening a home costs more than a small read."""
    return _reader(home, store).runs()


def newest_runs(
    home: Path | str | None = None,
    *,
    store: AkashicStore | None = None,
    **wanted: str | None,
) -> pd.DataFrame:
    """Runs newest first (ties by thread, so a page boundary is stable), those whose columns
    equal the ``wanted`` values that are given (kind, status, name, session): what the HTTP
    API pages through and the MCP server lists."""
    frame = list_runs(home, store=store)
    for column, value in wanted.items():
        if value is not None and not frame.empty:
            frame = frame[frame[column] == value]
    if frame.empty:
        return frame
    created = pd.to_datetime(frame["created_at"], utc=True).fillna(pd.Timestamp(0, tz="UTC"))
    order = frame.assign(_created=created).sort_values(
        ["_created", "thread"], ascending=[False, True], kind="stable"
    )
    return order.drop(columns="_created").reset_index(drop=True)


def _reader(home: Path | str | None, store: AkashicStore | None) -> AkashicStore:
    return store if store is not None else open_store(home, readonly=True)


def run_steps(
    thread_prefix: str,
    home: Path | str | None = None,
    after: int | None = None,
    *,
    store: AkashicStore | None = None,
) -> pd.DataFrame:
    """One run's steps (those past step ``after``, for a reader that has the rest); refuses
    (DamagedStore) when the store lost steps the run recorded. A long-lived reader (the HTTP
    API) passes the ``store`` it keeps open."""
    store = _reader(home, store)
    run = store.find_run(thread_prefix)
    steps = store.steps(str(run["thread"]), after)
    store.check_recorded(run, steps, -1 if after is None else after)
    return steps


def run_embeddings(
    thread_prefix: str, embedding_model: str | None = None, home: Path | str | None = None
) -> tuple[pd.DataFrame, Any]:
    """One run's steps joined with their vectors (rows without a vector are dropped).

    Returns (steps, vectors) with ``vectors[i]`` the L2-normalised embedding of ``steps.iloc[i]``;
    the embedding model defaults to the one most of the run's text vectors were made with (the
    image embedding model's only when the run has no others: name it to read the pictures).
    """
    import numpy as np

    from sandloop.storage.store import sql_str

    store = open_store(home, readonly=True)
    thread = str(store.find_run(thread_prefix)["thread"])
    vectors = store.select("embeddings", f"thread = {sql_str(thread)}")
    if embedding_model is None and not vectors.empty:
        models = vectors["embedding_model"]
        texts = models[models != settings_for(home).image_embed_model]
        embedding_model = str((texts if not texts.empty else models).mode().iloc[0])
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
    flow, parameters = _dialogue_flow(spec, seed, home, session)
    return _summary_of(_call(flow, parameters), DialogueSummary)


def start_dialogue(
    spec: DialogueSpec,
    launcher: Launcher,
    seed: int | None = None,
    home: Path | str | None = None,
    session: str | None = None,
) -> Started:
    """`run_dialogue` in the background."""
    flow, parameters = _dialogue_flow(spec, seed, home, session)
    launched = launcher.launch(flow, parameters)
    return Started("dialogue", parameters["thread"], launched.flow_run_id, launched.done)


def _dialogue_flow(
    spec: DialogueSpec, seed: int | None, home: Path | str | None, session: str | None
) -> tuple[Any, dict[str, Any]]:
    from sandloop.flows.dialogue import dialogue_flow

    settings = settings_for(home)
    thread = register_dialogue(AkashicStore.for_settings(settings), spec, seed, session)
    return dialogue_flow, {"thread": thread, "home": str(settings.home)}


def start_chat(
    model: str,
    system: str = "",
    home: Path | str | None = None,
    *,
    title: str | None = None,
    temperature: float = 0.7,
    params: dict[str, Any] | None = None,
    session: str | None = None,
    owner: str | None = None,
) -> dict[str, Any]:
    """A new chat with ``model`` (a model, ``route:NAME`` or ``recipe:NAME``) under the
    ``system`` role; its runs row. Nothing runs until the first message. ``owner``: the token
    user that made it over HTTP (the only one, besides an admin, who reaches it there)."""
    from sandloop import chats

    settings = settings_for(home)
    spec = chats.chat_spec(
        model,
        system,
        title=title,
        temperature=temperature,
        params=params,
        catalog=catalog_for(settings),
    )
    store = open_store(settings.home)
    return store.find_run(chats.start(store, spec, session, owner))


def chat_say(
    prefix: str, content: str, home: Path | str | None = None, *, user: str | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Add the person's message to a chat and run the actor's reply (one turn of the dialogue
    flow, a Prefect flow run); returns both messages. ReplyFailed when the model gave none.
    ``user``, here and in the other chat functions: only that user's chats are reached (a
    token's user over HTTP); None reaches every chat (the home's own person, an admin)."""
    from sandloop import chats
    from sandloop.flows.dialogue import dialogue_flow

    settings = settings_for(home)
    store = AkashicStore.for_settings(settings)
    said = chats.say(store, prefix, content, user)
    thread = str(said["thread"])
    summary = _summary_of(
        _call(dialogue_flow, {"thread": thread, "home": str(settings.home)}), DialogueSummary
    )
    turns = chats.turns(store, thread)
    reply = turns[turns["turn"] == int(said["turn"]) + 1]
    if reply.empty:
        raise chats.ReplyFailed(f"no reply: {summary.error or summary.stop_reason}")
    answer: dict[str, Any] = reply.iloc[0].to_dict()
    return said, answer


def chat_messages(
    prefix: str,
    home: Path | str | None = None,
    *,
    store: AkashicStore | None = None,
    user: str | None = None,
) -> pd.DataFrame:
    """A chat's messages in order, the person's and the actor's."""
    from sandloop import chats

    store = _reader(home, store)
    run = chats.chat_of(store, prefix, user)
    return chats.turns(store, str(run["thread"]))


def end_chat(
    prefix: str, home: Path | str | None = None, *, user: str | None = None
) -> dict[str, Any]:
    from sandloop import chats

    return chats.end(open_store(home), prefix, user)


def forget_message(
    prefix: str, turn: int, home: Path | str | None = None, *, user: str | None = None
) -> int:
    """Delete a chat's message ``turn`` and all after it; how many went."""
    from sandloop import chats

    return chats.forget_from(open_store(home), prefix, turn, user)


def list_chats(
    home: Path | str | None = None,
    *,
    store: AkashicStore | None = None,
    user: str | None = None,
) -> list[dict[str, Any]]:
    from sandloop import chats

    return chats.listing(_reader(home, store), user)


def dialogue_messages(thread_prefix: str, home: Path | str | None = None) -> pd.DataFrame:
    """A dialogue's turns in order: actor, content, temperature, the judge's verdict."""
    from sandloop.storage.store import NotFound, sql_str

    store = open_store(home, readonly=True)
    run = store.find_run(thread_prefix)
    thread = str(run["thread"])
    if run.get("kind") != "dialogue":
        raise NotFound(
            f"{thread[:12]} is a {run.get('kind')} run, not a dialogue; "
            f"`sandloop show {thread[:12]}` shows it"
        )
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
    phase: str | None = None,
) -> RecipeResult:
    """Run a recipe (a name, a YAML path, or a ``RecipeSpec`` built in Python) as a Prefect flow
    run; returns its result. ``phase`` labels the run (``moderation``: not training data)."""
    from sandloop.flows.recipe import recipe_flow

    settings = settings_for(home)
    if not isinstance(recipe, str):
        recipe = recipe.model_dump_json()
    parameters = {
        "recipe": recipe,
        "input": input_text,
        "context": context,
        "seed": seed,
        "model": model,
        "session": session,
        "home": str(settings.home),
        "phase": phase,
    }
    return _summary_of(_call(recipe_flow, parameters), RecipeResult)


def moderate(prompt: str, recipe: str, home: Path | str | None = None) -> str | None:
    """Why ``recipe`` (a moderation recipe answering ``{allowed, reason}``) declines
    ``prompt``, or None when it allows it. A recipe that gives no verdict, or none within
    ``moderation_timeout_s``, declines: a wall fails closed, and a visitor is not kept waiting
    on a model that never answers in JSON (its run goes on in the background, bounded by the
    recipe's rounds)."""
    import threading

    from sandloop.exports.snapshot import MODERATION_PHASE

    limit_s = settings_for(home).moderation_timeout_s
    outcome: list[RecipeResult | BaseException] = []

    def judge() -> None:
        try:
            outcome.append(run_recipe(recipe, prompt, home=home, phase=MODERATION_PHASE))
        except BaseException as exc:  # handed to the caller's thread
            outcome.append(exc)

    worker = threading.Thread(target=judge, name="moderation", daemon=True)
    worker.start()
    worker.join(limit_s)
    if not outcome:
        return f"the moderation gave no verdict within {limit_s:g} s"
    result = outcome[0]
    if isinstance(result, BaseException):
        raise result
    verdict = result.parsed if result.accepted and isinstance(result.parsed, dict) else None
    if verdict is None:
        return f"the moderation gave no verdict ({result.error or result.status})"
    if verdict.get("allowed") is True:
        return None
    return str(verdict.get("reason") or "not allowed")


def start_recipe(
    recipe: RecipeSpec,
    input_text: str,
    launcher: Launcher,
    *,
    context: dict[str, Any] | None = None,
    seed: int | None = None,
    session: str | None = None,
    home: Path | str | None = None,
) -> Started:
    """`run_recipe` in the background. The context is resolved now, so a bad slot is refused
    before anything starts and the thread is known; the flow is given the resolved values and
    so lands on the same thread."""
    from sandloop.flows.recipe import recipe_flow, search_for
    from sandloop.loops.recipe.context import resolve_context

    settings = settings_for(home)
    store = AkashicStore.for_settings(settings)
    values = resolve_context(
        recipe, input_text, context or {}, seed, search=search_for(store, settings)
    )
    parameters = {
        "recipe": recipe.model_dump_json(),
        "input": input_text,
        "context": {k: v for k, v in values.items() if k != "input"},
        "seed": seed,
        "model": None,
        "session": session,
        "home": str(settings.home),
    }
    launched = launcher.launch(recipe_flow, parameters)
    return Started("recipe", recipe.thread(values, seed), launched.flow_run_id, launched.done)


def run_pipeline(
    pipeline: Path | str,
    input_text: str,
    *,
    seed: int | None = None,
    session: str | None = None,
    home: Path | str | None = None,
) -> PipelineResult:
    from sandloop.flows.recipe import pipeline_flow

    settings = settings_for(home)
    parameters = {
        "pipeline": str(pipeline),
        "input": input_text,
        "seed": seed,
        "session": session,
        "home": str(settings.home),
    }
    return _summary_of(_call(pipeline_flow, parameters), PipelineResult)


def create_snapshot(name: str, home: Path | str | None = None, **selection: Any) -> dict[str, Any]:
    """Pin a selection of runs (realm, thread, session, kind, phase, since, until, status,
    and min_score / rated_by over the recorded ratings)."""
    from pydantic import ValidationError

    from sandloop.exports import snapshot as snapshots
    from sandloop.loops.spec_files import describe_validation_error

    try:
        chosen = snapshots.Selection(**selection)
    except ValidationError as exc:
        raise SpecError(describe_validation_error(exc, "snapshot")) from None
    return snapshots.create(open_store(home), name, chosen)


def export_destination(out: Path | str) -> str:
    """Where an export to ``out`` goes, as a user should read it: a URL as given, a folder as
    its absolute path."""
    from sandloop.exports.destination import is_url

    return str(out) if is_url(out) else str(Path(out).expanduser().resolve())


#: Why a format can write nothing while others write rows: what it needs that the snapshot lacks.
EMPTY_FORMAT_REASONS = {
    "openai-dpo": "it needs preference pairs: a recipe's rejected round, ratings of two "
    "answers, or `sandloop judge --compare`",
}


def empty_formats(manifest: dict[str, Any]) -> dict[str, str]:
    """The formats asked for that wrote no rows, each with why it may be so: an export that
    leaves a format empty says so rather than writing nothing silently."""
    written = {key.split("/")[0] for key, rows in manifest["records"].items() if rows}
    return {
        fmt: EMPTY_FORMAT_REASONS.get(fmt, "no example of the snapshot fits it")
        for fmt in manifest["options"]["formats"]
        if fmt not in written
    }


def export_file_sets(manifest: dict[str, Any]) -> dict[str, str]:
    """Each file set of an export (a config of its card) with the rows its files hold per
    split: what a user checks against the files, not the examples before formatting."""
    from sandloop.exports.card import config_name

    shown: dict[str, list[str]] = {}
    for key, rows in manifest["records"].items():  # FORMAT[/PART]/SPLIT
        fmt, *part, split = key.split("/")
        shown.setdefault(config_name(fmt, "".join(part)), []).append(f"{rows} {split}")
    return {name: ", ".join(counts) for name, counts in shown.items()}


def list_snapshots(
    home: Path | str | None = None, *, store: AkashicStore | None = None
) -> pd.DataFrame:
    """Snapshots, newest first: name, runs, selection, created."""
    from sandloop.exports import snapshot as snapshots

    return snapshots.listing(_reader(home, store))


def snapshot_runs(name: str, home: Path | str | None = None) -> tuple[dict[str, Any], pd.DataFrame]:
    """A snapshot's row (selection, pinned versions) and its runs, read at those versions."""
    from sandloop.exports import snapshot as snapshots

    store = open_store(home, readonly=True)
    row = snapshots.get(store, name)
    assert row is not None  # `get` raises for an unknown name
    return row, snapshots.Pinned(store, row).runs()


def delete_snapshot(name: str, home: Path | str | None = None) -> None:
    """Forget a snapshot and untag its versions (compaction may then clean them up)."""
    from sandloop.exports import snapshot as snapshots

    snapshots.delete(open_store(home), name)


def validate_export(
    path: Path, fmt: str | None = None, max_tokens: int = 65_536
) -> dict[str, ValidationReport]:
    """A format's checks on an export folder (every format in it) or one file, by file."""
    from sandloop.exports.formats import FORMATS
    from sandloop.exports.validate import validate_file

    if not path.exists():
        raise SpecError(f"{path}: no such file or folder")
    if path.is_file():
        named = next((p.name for p in path.parents if p.name in FORMATS), path.parent.name)
        files = [(fmt or named, path)]
    else:
        folders = [path / fmt] if fmt else [p for p in path.iterdir() if p.name in FORMATS]
        if path.name in FORMATS:
            folders = [path]
        files = [
            (folder.name, f)
            for folder in folders
            for f in sorted(folder.rglob("*"))
            if f.is_file()
            and (f.suffix in (".parquet", ".zst") or f.name.endswith(".jsonl"))
            and "provenance" not in f.relative_to(folder).parts  # openai-dpo's origins, not data
        ]
    if not files or {f for f, _ in files} - set(FORMATS):
        raise SpecError(f"say which format with --format ({', '.join(FORMATS)})")
    return {str(f): validate_file(f, chosen, max_tokens) for chosen, f in files}


def export_traces(
    out: Path | str | None,
    home: Path | str | None = None,
    *,
    snapshot: str | None = None,
    thread: str | None = None,
    push: bool = False,
    host: str | None = None,
    public_key: str | None = None,
    user: str | None = None,
) -> TracesWritten:
    """Write runs (all, a snapshot's, or a thread prefix's) as Langfuse ingestion events: a
    .json file of one batch, or .jsonl of one event a line; secrets redacted. With ``push``,
    also send them to a Langfuse host (``LANGFUSE_HOST``) with the user's key pair: the
    public key (``LANGFUSE_PUBLIC_KEY``) and the secret, resolved like every other key."""
    import os

    import orjson

    from sandloop.credentials import resolve_key
    from sandloop.exports import snapshot as snapshots
    from sandloop.exports.langfuse import redact_event, run_events
    from sandloop.exports.langfuse_push import TracePushError
    from sandloop.exports.langfuse_push import push as push_events
    from sandloop.exports.paths import check_output, write_atomically
    from sandloop.exports.redact import Redactor
    from sandloop.storage.store import NotFound, sql_str

    settings = settings_for(home)
    if out is None and not push:
        raise SpecError("say where the traces go: --out FILE, --push, or both")
    target = check_output(str(out), settings.home, folder=False) if out is not None else None
    if push:  # every key checked before any work
        host = host or os.environ.get("LANGFUSE_HOST") or "https://cloud.langfuse.com"
        public_key = public_key or os.environ.get("LANGFUSE_PUBLIC_KEY")
        secret = resolve_key("langfuse", user=user)
        if not public_key or secret is None:
            raise TracePushError(
                "--push needs a Langfuse key pair: LANGFUSE_PUBLIC_KEY (or --public-key) and the "
                "secret (`sandloop keys set langfuse`, or LANGFUSE_SECRET_KEY)"
            )
    store = AkashicStore.for_settings(settings, readonly=True)
    if snapshot is not None:
        row = snapshots.get(store, snapshot)
        assert row is not None  # `get` raises for an unknown name
        pinned = snapshots.Pinned(store, row)
        runs, read = pinned.runs(), pinned.read
    else:
        runs, read = store.runs(), store.select
    if thread:
        runs = runs[runs["thread"].str.startswith(thread)]
    if runs.empty:
        raise NotFound("no runs to export")
    redactor = Redactor()
    events: list[dict[str, Any]] = []
    for run in runs.to_dict("records"):
        calls = read("invocations", f"thread = {sql_str(run['thread'])}")
        events.extend(redact_event(e, redactor) for e in run_events(run, calls))
    if target is not None:
        if target.suffix == ".jsonl":
            data = b"".join(orjson.dumps(e) + b"\n" for e in events)
        else:
            data = orjson.dumps({"batch": events}, option=orjson.OPT_INDENT_2)
        write_atomically(target, data)
    pushed = None
    if push:
        assert host is not None and public_key is not None and secret is not None
        pushed = push_events(events, host, public_key, secret.value)
    return TracesWritten(target, len(events), len(runs), sum(redactor.counts.values()), pushed)


class ExportChoices(TypedDict, total=False):
    """The export options, each with the default `_export_flow` gives it: typed here once
    for the foreground and background exports."""

    val_fraction: float
    dedupe: str
    compress: str | None
    overwrite: bool
    allow_invalid: bool
    redact: list[str] | None
    license_id: str
    language: list[str] | None


def export_snapshot(
    name: str,
    formats: list[str],
    out: Path | str,
    home: Path | str | None = None,
    **options: Unpack[ExportChoices],
) -> dict[str, Any]:
    """Write a snapshot as datasets through the export flow; returns the manifest. The snapshot,
    the output place and the options (val_fraction, dedupe, compress, overwrite,
    allow_invalid, redact, license_id, language) are checked before Prefect starts, so a bad
    one is one error and nothing is written."""
    from sandloop.flows.driver import value_of

    result = value_of(_call(*_export_flow(name, formats, out, home, **options)))
    if isinstance(result, BaseException):
        raise result
    manifest: dict[str, Any] = result
    return manifest


def start_export(
    name: str,
    formats: list[str],
    out: Path | str,
    launcher: Launcher,
    home: Path | str | None = None,
    **options: Unpack[ExportChoices],
) -> Started:
    """`export_snapshot` in the background, checked first just the same."""
    launched = launcher.launch(*_export_flow(name, formats, out, home, **options))
    return Started("export", name, launched.flow_run_id, launched.done)


def _export_flow(
    name: str,
    formats: list[str],
    out: Path | str,
    home: Path | str | None = None,
    *,
    val_fraction: float = 0.1,
    dedupe: str = "exact",
    compress: str | None = None,
    overwrite: bool = False,
    allow_invalid: bool = False,
    redact: list[str] | None = None,
    license_id: str = "unknown",
    language: list[str] | None = None,
) -> tuple[Any, dict[str, Any]]:
    import os
    import tempfile

    from sandloop.exports import snapshot as snapshots
    from sandloop.exports.destination import check_remote, is_url
    from sandloop.exports.paths import check_output
    from sandloop.exports.writer import ExportOptions
    from sandloop.flows.export import export_flow

    settings = settings_for(home)
    snapshots.get(AkashicStore.for_settings(settings), name)  # a missing one is one line
    target = str(out)
    if is_url(target):  # checked here, staged locally and uploaded by the flow
        out_path = check_remote(target, str(settings.home), overwrite=overwrite).url
        staging = Path(tempfile.gettempdir()) / f"sandloop-check-{os.getpid()}"
    else:
        staging = check_output(target, settings.home, folder=True)
        out_path = str(staging)
    ExportOptions(
        tuple(formats),
        staging,
        val_fraction,
        dedupe,
        compress=compress,
        overwrite=overwrite,
        allow_invalid=allow_invalid,
        redact=tuple(redact or ()),
        license=license_id,
        language=tuple(language or ()),
    ).check(settings.home)
    return export_flow, {
        "snapshot": name,
        "formats": list(formats),
        "out": out_path,
        "val_fraction": val_fraction,
        "dedupe": dedupe,
        "compress": compress,
        "overwrite": overwrite,
        "allow_invalid": allow_invalid,
        "redact": list(redact or ()),
        "home": str(settings.home),
        "license_id": license_id,
        "language": list(language or ()),
    }


def flow_run_state(flow_run_id: str) -> dict[str, Any]:
    """Where a flow run stands in Prefect: for a client following a run it started."""
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    from sandloop.scrub import scrub
    from sandloop.storage.store import NotFound

    try:
        wanted = UUID(flow_run_id)
    except ValueError:
        raise NotFound(f"no flow run {flow_run_id}") from None
    with get_client(sync_client=True) as client:
        try:
            found = client.read_flow_run(wanted)
        except ObjectNotFound:
            raise NotFound(f"no flow run {flow_run_id}") from None
    state = found.state
    return {
        "id": str(found.id),
        "name": found.name,
        "state": state.type.value if state else None,
        "state_name": state.name if state else None,
        "message": scrub(state.message) if state and state.message else None,
    }


def put_blob(data: bytes, home: Path | str | None = None) -> dict[str, Any]:
    """Store an uploaded image or sound as a content-addressed blob: how a client gives a
    network that starts from one its genesis, without naming a file on the server."""
    from sandloop.storage.blobs import MEDIA_SUFFIXES, blob_media_type

    media_type = blob_media_type(data)
    if media_type not in MEDIA_SUFFIXES:
        raise SpecError("an upload is an image or a sound: PNG, JPEG, WebP, GIF, WAV, FLAC or MP3")
    return {"hash": open_store(home).blobs.put(data), "media_type": media_type, "bytes": len(data)}


def blob_genesis(
    blob_hash: str,
    input_type: str,
    home: Path | str | None = None,
    *,
    store: AkashicStore | None = None,
) -> str:
    """A stored blob as a genesis file for a network that takes ``input_type`` (image, audio):
    written under this machine's temp folder by its hash, so the path is the server's own and
    names nothing a client chose. Refused when the blob is missing or of the other kind."""
    import tempfile

    from sandloop.storage.blobs import MEDIA_SUFFIXES, blob_media_type
    from sandloop.storage.store import NotFound

    data = _reader(home, store).blobs.get_many([blob_hash])[0]
    if data is None:
        raise NotFound(f"no blob {blob_hash}; upload it first (POST /v1/blobs)")
    media_type = blob_media_type(data)
    if not media_type.startswith(f"{input_type}/") or media_type not in MEDIA_SUFFIXES:
        raise SpecError(
            f"genesis_blob: this network starts from {input_type}; {blob_hash} is {media_type}"
        )
    folder = Path(tempfile.gettempdir()) / "sandloop-genesis"
    folder.mkdir(exist_ok=True)
    path = folder / f"{blob_hash}{MEDIA_SUFFIXES[media_type]}"
    if not path.is_file():
        partial = path.with_suffix(f".{os.getpid()}.partial")
        partial.write_bytes(data)
        partial.replace(path)
    return str(path)


def publish_run(
    thread_prefix: str, home: Path | str | None = None, *, public: bool = True
) -> dict[str, Any]:
    """Put a network run on the public gallery (or, with ``public=False``, take it off)."""
    from sandloop import publishing

    store = open_store(home)
    return publishing.publish(store, store.find_run(thread_prefix), public)


def publish_start(thread: str, home: Path | str | None = None) -> None:
    """A visitor's new run is public from its start, before its flow has recorded it. A thread
    already recorded keeps its choice: a visitor who types the genesis of someone's private run
    (the same thread) does not publish it."""
    from sandloop import publishing

    store = open_store(home)
    if store.get_run(thread) is None:
        publishing.set_public(store, thread)


def is_public(
    thread: str, home: Path | str | None = None, *, store: AkashicStore | None = None
) -> bool:
    """Whether the public gallery may show ``thread``."""
    from sandloop import publishing

    return publishing.is_public(_reader(home, store), thread)


CANCELLABLE = ("network", "dialogue")


def cancel_run(
    thread_prefix: str,
    home: Path | str | None = None,
    *,
    flow_run_id: str | None = None,
    store: AkashicStore | None = None,
) -> dict[str, Any]:
    """Stop a network run or a dialogue. A running one stops after the step under way (its flow
    run is Cancelling, then Cancelled); one waiting for a scheduled continuation is cancelled at
    once. Every recorded step is kept, and running the same thread again resumes it.
    ``flow_run_id``: a start the caller made that its flow has not recorded yet (a run queued
    for a slot in the HTTP API). Refuses (NotCancellable) a run that is not going."""
    from sandloop.flows.cancelling import ask_to_stop
    from sandloop.loops.status import NotCancellable

    why = "cancelled by request; the record is kept"
    if flow_run_id is not None:
        state = ask_to_stop(flow_run_id, why)
        return {"thread": thread_prefix, "flow_run_id": flow_run_id, "state": state}
    reader = _reader(home, store)
    run = reader.find_run(thread_prefix)
    thread, status, kind = str(run["thread"]), str(run["status"]), str(run["kind"])
    if kind not in CANCELLABLE:
        raise NotCancellable(
            f"a {kind} run ends on its own; only network runs and dialogues can be cancelled"
        )
    if status == "waiting" and run.get("continuation"):
        return _cancel_waiting(thread, str(run["continuation"]), home, why)
    if status != "running" or not run.get("flow_run_id") or not reader.is_live(thread):
        said = "interrupted" if status == "running" else status
        raise NotCancellable(f"run {thread[:12]} is not running ({said}); nothing to cancel")
    state = ask_to_stop(str(run["flow_run_id"]), why)
    return {"thread": thread, "flow_run_id": str(run["flow_run_id"]), "state": state}


def _cancel_waiting(
    thread: str, continuation: str, home: Path | str | None, why: str
) -> dict[str, Any]:
    """A run between sessions: its continuation never starts, and its record says cancelled.
    If the continuation has just taken the thread, that flow run is the one asked to stop."""
    from sandloop.flows.cancelling import ask_to_stop
    from sandloop.loops.status import RunStatus, StopReason
    from sandloop.registration import get_record, put_record

    state = ask_to_stop(continuation, why)
    if state == "CANCELLED":
        writer = open_store(home)
        try:
            log = writer.open_thread(thread, wait_s=0.0)
        except ThreadLocked:  # the continuation runs, and stops itself
            return {"thread": thread, "flow_run_id": continuation, "state": "CANCELLING"}
        try:
            record = get_record(writer, thread)
            if record is not None and record.status == RunStatus.WAITING:
                put_record(
                    writer,
                    record.but(
                        status=RunStatus.CANCELLED.value,
                        stop_reason=StopReason.CANCELLED.value,
                        next_due_at=None,
                        continuation=None,
                    ),
                )
        finally:
            log.close()
    return {"thread": thread, "flow_run_id": continuation, "state": state}


def deployable(
    path: Path,
    *,
    genesis: str | None,
    question: str | None,
    input_text: str | None,
    seed: int | str | None,
    stop: dict[str, Any],
    pace: dict[str, Any],
    home: str,
    session: str | None,
) -> tuple[Any, dict[str, Any]]:
    """The flow that runs this kind of spec as a deployment, and its parameters; the spec is
    checked here, so a bad one fails now rather than at every firing."""
    from sandloop.loops.dialogue.spec import load_dialogue
    from sandloop.loops.recipe.spec import load_pipeline, load_recipe
    from sandloop.loops.spec_files import read_mapping, spec_kind

    kind = spec_kind(read_mapping(path), str(path))
    catalog = model_catalog(home)
    common = {"home": home, "session": session}
    if kind == "network":
        from sandloop.flows.network import network_run

        if genesis is None:
            raise SpecError(f"{path} is a network: give --genesis, its first input")
        run = {"network": str(path), "genesis": genesis, "seed": seed, "stop": stop, "pace": pace}
        check_seed = 0 if seed == "scheduled" else seed
        load_run_spec(path, genesis=genesis, seed=check_seed, stop=stop, pace=pace, home=home)
        return network_run, {"run": run, **common}
    if kind == "dialogue":
        from sandloop.flows.dialogue import dialogue_flow

        load_dialogue(path, catalog, question)
        return dialogue_flow, {"spec": str(path), "question": question, "seed": seed, **common}
    from sandloop.flows.recipe import pipeline_flow, recipe_flow

    if input_text is None:
        raise SpecError(f"{path} is a {kind}: give --input, the text it works on")
    if isinstance(seed, str):
        raise SpecError(
            f"a {kind}'s --seed is a number: the same input and seed is the same result"
        )
    if kind == "pipeline":
        load_pipeline(path, catalog)
        return pipeline_flow, {"pipeline": str(path), "input": input_text, "seed": seed, **common}
    load_recipe(str(path), catalog)
    return recipe_flow, {"recipe": str(path), "input": input_text, "seed": seed, **common}


def serve(
    flow: Any,
    name: str,
    parameters: dict[str, Any],
    *,
    cron: str | None = None,
    interval: float | None = None,
    now: bool = False,
    limit: int | None = None,
    started: Callable[[str], None] = lambda _name: None,
) -> None:
    """Register ``flow`` as a deployment (on a schedule if given) and run its flow runs from this
    process until it is stopped; ``now`` also starts one at once (``started`` gets its name)."""
    from prefect import serve as prefect_serve
    from prefect.deployments import run_deployment
    from prefect.types.entrypoint import EntrypointType

    deployment = flow.to_deployment(
        name=name,
        cron=cron,
        interval=interval,
        parameters=parameters,
        tags=["sandloop"],
        entrypoint_type=EntrypointType.MODULE_PATH,
    )
    if now:
        deployment_id: Any = deployment.apply()
        flow_run: Any = run_deployment(deployment_id, timeout=0, as_subflow=False)
        started(str(flow_run.name))
    prefect_serve(deployment, limit=limit, print_starting_message=False)


def load_sweep(path: Path | str, home: Path | str | None = None) -> SweepSpec:
    """A sweep file, with its network and genesis files, read and checked against the home's
    models."""
    from sandloop.loops.sweep.spec import load_sweep as load

    return load(Path(path), model_catalog(home))


def run_sweep(
    spec: SweepSpec,
    home: Path | str | None = None,
    session: str | None = None,
    *,
    redefine: bool = False,
) -> SweepSummary:
    """Run (or go on with) a sweep as one Prefect flow run; returns its summary.

    A sweep is its name. Another stop rule or window goes on with the same sweep; other
    networks, genesis prompts or seeds under a name already taken are refused (SweepRedefined)
    unless ``redefine``, so that a report never mixes two experiments by accident.
    """
    from sandloop.flows.sweep import sweep_flow

    settings = settings_for(home)
    # an unusable home, or a name taken by another experiment, fails here, before Prefect
    check_sweep_name(spec, AkashicStore.for_settings(settings), redefine=redefine)
    state = _call(
        sweep_flow, {"spec": spec.model_dump_json(), "home": str(settings.home), "session": session}
    )
    return _summary_of(state, SweepSummary)


def check_sweep_name(spec: SweepSpec, store: AkashicStore, *, redefine: bool = False) -> None:
    """Refuse (SweepRedefined) a spec whose name already stands for other members."""
    from sandloop.loops.sweep.spec import SweepRedefined
    from sandloop.storage.store import sql_str

    if redefine or not store.has_table("sweeps"):
        return
    earlier = store.rows("sweeps", f"name = {sql_str(spec.name)}")
    if earlier and earlier[0]["realm"] != spec.realm:
        raise SweepRedefined(
            f"a sweep named {spec.name!r} already ran other networks, genesis prompts or seeds; "
            "name this one differently (threads that already ran are reused either way: they "
            "are keyed by network, genesis and seed), or pass --redefine to replace it"
        )


def list_sweeps(home: Path | str | None = None) -> pd.DataFrame:
    """Sweeps, newest first: name, status, threads (done), steps, created."""
    store = open_store(home, readonly=True)
    frame = store.select("sweeps")
    columns = ["name", "status", "threads", "threads_done", "steps", "created_at", "updated_at"]
    return frame.sort_values("created_at", ascending=False).reset_index(drop=True)[columns]


def sweep_threads(name: str, home: Path | str | None = None) -> pd.DataFrame:
    """Each thread of a sweep: network, genesis, seed, and where its run stands."""
    from sandloop.loops.sweep.report import threads_of

    store = open_store(home, readonly=True)
    return threads_of(store, _sweep_spec(store, name, model_catalog(home)))


def sweep_report(name: str, home: Path | str | None = None) -> pd.DataFrame:
    """Per network × genesis: threads, stop reasons, steps and loop lengths."""
    from sandloop.loops.sweep.report import summarise

    return summarise(sweep_threads(name, home))


def sweep_trajectories(
    name: str,
    home: Path | str | None = None,
    *,
    embedding_model: str | None = None,
    clusters: int | None = None,
    converge_above: float | None = None,
    embed: bool = True,
    on_chunk: Callable[[int, int], None] = lambda _threads, _embedded: None,
) -> Trajectories:
    """A sweep's trajectories: drift per network and step, when threads looped or converged,
    and clusters of their final outputs with a medoid each.

    Vectors are the store's, for ``embedding_model`` (default: the configured one); outputs
    without one are embedded and recorded first, unless ``embed`` is off. ``on_chunk`` hears
    (threads read, outputs embedded so far) as the threads stream by.
    """
    from sandloop.embedding.embedders import embedder_from
    from sandloop.loops.sweep.report import trajectories_of

    settings = settings_for(home)
    store = AkashicStore.for_settings(settings, readonly=not embed)
    spec = _sweep_spec(store, name, catalog_for(settings))
    return trajectories_of(
        store,
        spec,
        embedder_from(settings, embedding_model),
        embed=embed,
        clusters=clusters,
        converge_above=converge_above,
        settings=settings,
        on_chunk=on_chunk,
    )


def _sweep_spec(store: AkashicStore, name: str, catalog: Catalog) -> SweepSpec:
    from sandloop.loops.spec_check import stored
    from sandloop.loops.sweep.spec import SweepSpec as Spec
    from sandloop.storage.store import NotFound, sql_str

    rows = store.rows("sweeps", f"name = {sql_str(name)}") if store.has_table("sweeps") else []
    if not rows:
        known = sorted(store.select("sweeps")["name"]) if store.has_table("sweeps") else []
        listed = ", ".join(known[:10]) or "none yet"
        raise NotFound(
            f"no sweep named {name!r} (sweeps: {listed}); run one with `sandloop sweep run`"
        )
    return stored(rows[0]["spec"], Spec, catalog)


# -- embeddings and search ---------------------------------------------------------------


def index_settings(home: Path | str | None = None, backend: str | None = None) -> Settings:
    """The home's settings, with the vector index ``backend`` (faiss or elasticsearch) when
    given."""
    from sandloop.config import SettingsError

    settings = settings_for(home)
    if backend is None:
        return settings
    if backend not in ("faiss", "elasticsearch"):
        raise SettingsError(f"--backend {backend!r}: use faiss or elasticsearch")
    return settings.model_copy(update={"index_backend": backend})


def load_embedder(
    home: Path | str | None = None, model: str | None = None, *, images: bool = False
) -> Embedder:
    """The embedding model ``model``, else the configured one (the image embedder with
    ``images``, which embeds image outputs and searches them by text); loaded once per
    process."""
    from sandloop.embedding.embedders import embedder_from, image_embedder_from

    if images:
        return image_embedder_from(settings_for(home), model)
    return embedder_from(settings_for(home), model)


def pending_embeddings(
    home: Path | str | None = None,
    thread: str | None = None,
    *,
    store: AkashicStore | None = None,
) -> int:
    """Text outputs (of ``thread``) with no vector for the configured embedding model yet:
    runs do not wait for theirs, and the next `search` or `embed` makes them."""
    from sandloop.embedding.embedders import embedder_name
    from sandloop.embedding.service import pending

    model = embedder_name(settings_for(home).embed_model)
    return pending(_reader(home, store), model, thread)


def embed(
    home: Path | str | None = None,
    *,
    embedder: Embedder | None = None,
    realm: str | None = None,
    thread: str | None = None,
    batch_size: int = 256,
    backend: str | None = None,
    on_total: Callable[[int], None] = lambda _n: None,
    on_batch: Callable[[int], None] = lambda _n: None,
    announce: Callable[[str], None] = lambda _m: None,
) -> EmbedReport:
    """Embed every recorded output (of ``realm``/``thread``, prefixes) of the embedder's type
    (text, or images for an image embedder) that has no vector yet for it, and index it; the
    same text or image is never embedded twice."""
    from sandloop.embedding.service import embed_and_index

    settings = index_settings(home, backend)
    return embed_and_index(
        AkashicStore.for_settings(settings),
        embedder or load_embedder(home),
        realm=realm,
        thread=thread,
        batch_size=batch_size,
        settings=settings,
        on_total=on_total,
        on_batch=on_batch,
        announce=announce,
    )


def search(
    query: str,
    home: Path | str | None = None,
    *,
    k: int = 10,
    embedder: Embedder | None = None,
    realm: str | None = None,
    thread: str | None = None,
    from_model: str | None = None,
    backend: str | None = None,
    announce: Callable[[str], None] = lambda _m: None,
    catch_up: int | None = None,
) -> pd.DataFrame:
    """The recorded outputs nearest in meaning to ``query``: score, key, thread, step, model,
    output (an image output as its blob's URL in ``output_url``).

    Runs do not wait for their embeddings, so a search first embeds what was recorded since
    the last one: all of it, or the first ``catch_up`` outputs (a served search stays bounded;
    its next searches make the rest)."""
    from sandloop.embedding.service import catch_up as embed_new
    from sandloop.embedding.service import search as semantic_search
    from sandloop.storage.faiss_index import SearchFilter

    settings = index_settings(home, backend)
    embedder = embedder or load_embedder(home)
    store = AkashicStore.for_settings(settings, readonly=True)
    if catch_up != 0:
        made = embed_new(store, embedder, limit=catch_up, settings=settings, announce=announce)
        if made.embedded or made.reused:
            store = AkashicStore.for_settings(settings, readonly=True)  # reads what was added
    hits = semantic_search(
        store,
        embedder,
        query,
        k,
        SearchFilter(realm=realm, thread=thread, model=from_model),
        announce=announce,
        settings=settings,
    )
    hits["output_url"] = [
        None if t == "text" else store.blobs.url(str(o))
        for o, t in zip(hits["output"], hits["output_type"], strict=True)
    ]
    return hits


def rebuild_index(
    home: Path | str | None = None,
    *,
    embedder: Embedder | None = None,
    backend: str | None = None,
) -> VectorIndex:
    """The embedding model's index (FAISS or Elasticsearch), rebuilt from the store's vectors."""
    from sandloop.embedding.service import rebuild_index as rebuild

    settings = index_settings(home, backend)
    return rebuild(AkashicStore.for_settings(settings), embedder or load_embedder(home), settings)


# -- the store's health, keys, models ----------------------------------------------------


def examine_store(
    home: Path | str | None = None, *, repair: bool = False, rewind: bool = False
) -> tuple[AkashicStore, list[Finding]]:
    """What is damaged in the store (and, with ``repair``, mended): see `sandloop doctor`."""
    from sandloop.storage.doctor import examine

    store = open_store(home, readonly=not repair)
    return store, examine(store, repair=repair, rewind=rewind)


def key_platforms() -> tuple[str, ...]:
    """The platforms a key can be kept for."""
    from sandloop.credentials import PLATFORM_ENV

    return tuple(PLATFORM_ENV)


def set_key(
    platform: str,
    key: str,
    *,
    user: str | None = None,
    store: str = "keyring",
    plaintext_ok: bool = False,
) -> None:
    """Keep ``platform``'s API key in the OS keyring or a Prefect Secret block (a keyring that
    is a plain file only with ``plaintext_ok``)."""
    from sandloop.credentials import set_key as keep

    keep(platform, key, user=user, store=store, plaintext_ok=plaintext_ok)


def list_keys(user: str | None = None) -> dict[str, ResolvedKey | None]:
    """Per platform, the key that would be used (masked) and where it comes from, or None."""
    from sandloop.credentials import list_keys as listed

    return listed(user)


def remove_key(platform: str, *, user: str | None = None) -> list[str]:
    """Remove ``platform``'s stored key; returns where it was removed from."""
    from sandloop.credentials import remove_key as remove

    return remove(platform, user=user)


def model_catalog(home: Path | str | None = None) -> Catalog:
    """The models and routes a home knows: the built-in catalog and its models file; the one
    its specs are checked against."""
    return catalog_for(settings_for(home))


def catalog_listing(home: Path | str | None = None) -> dict[str, Any]:
    """The catalog as plain data: what `models --json` prints and the HTTP API serves."""
    known = model_catalog(home)
    return {
        "models": [
            {
                "ref": i.ref,
                "task": i.task,
                "input": i.input_type,
                "output": i.output_type,
                "source": i.model_id,
                "description": i.description,
                "cost": i.cost_hint,
                "cost_usd": i.cost_usd.model_dump() if i.cost_usd else None,
                "default_params": i.default_params,
                "params": list(i.params_model.model_fields),
            }
            for i in known.models.values()
        ],
        "routes": {n: r.model_dump() for n, r in known.routes.items()},
        "models_file": str(known.user_file) if known.user_file else None,
    }


def create_token(
    scope: str, user: str, home: Path | str | None = None, expires: str | None = None
) -> tuple[str, Any]:
    """A new API token (shown once) and its grant; only its hash is stored. ``expires``: how
    long it lasts (``30d``, ``12h``, ``90m``); without it, until revoked."""
    from sandloop import access_tokens

    span = None if expires is None else access_tokens.lifetime(expires)
    return access_tokens.create(open_store(home), scope, user, span)


def check_token(token: str, home: Path | str | None = None) -> Any:
    """What ``token`` grants (an `access_tokens.Grant`), or None: unknown, revoked, or none yet."""
    from sandloop import access_tokens
    from sandloop.storage.store import NotFound

    try:
        return access_tokens.grant_of(open_store(home, readonly=True), token)
    except NotFound:  # a store without a tokens table: nothing was ever granted
        return None


def list_tokens(home: Path | str | None = None) -> pd.DataFrame:
    from sandloop import access_tokens

    return access_tokens.listing(open_store(home))


def revoke_token(short_id: str, home: Path | str | None = None) -> dict[str, Any]:
    from sandloop import access_tokens

    return access_tokens.revoke(open_store(home), short_id)


def work_queue(home: Path | str | None = None) -> WorkQueue:
    """The home's queue of work done outside Prefect (open it once and keep it: its lock
    serializes the claims made through it)."""
    from sandloop.work_queue import WorkQueue

    return WorkQueue(open_store(home))


def prepare_models(
    spec: RunSpec,
    home: Path | str | None = None,
    announce: Callable[[str], None] = lambda _m: None,
) -> None:
    """Load (converting if need be) the network's local models before the run starts: the first
    step is not slowed by a load, and a missing model fails before anything is recorded."""
    from sandloop.models.factory import prepare_models as prepare

    prepare([e.model for e in spec.network.models], settings_for(home), announce)


# -- specs: recipes, pipelines, dialogues ------------------------------------------------


def load_recipe(
    name_or_path: str, home: Path | str | None = None, model: str | None = None
) -> RecipeSpec:
    """A recipe (a file, ``<home>/recipes/NAME.yaml``, or a built-in), checked; ``model``
    replaces its model or route for this use."""
    from sandloop.loops.recipe.spec import load_recipe as load

    return load(name_or_path, model_catalog(home), model)


def recipe_file(name_or_path: str, home: Path | str | None = None) -> Path:
    """The file a recipe name stands for."""
    from sandloop.loops.recipe.files import find_recipe_file

    return find_recipe_file(name_or_path, settings_for(home).local_dir)


def recipe_names(home: Path | str | None = None) -> list[str]:
    """The built-in recipes and the home's own, by name."""
    from sandloop.loops.recipe.files import builtin_names, user_recipe_names

    return sorted({*builtin_names(), *user_recipe_names(settings_for(home).local_dir)})


def load_pipeline(path: Path | str, home: Path | str | None = None) -> PipelineSpec:
    """A pipeline file, checked, with every stage's recipe (and model) found."""
    from sandloop.loops.recipe.spec import load_pipeline as load

    pipeline = load(Path(path), model_catalog(home))
    for stage in pipeline.stages:
        load_recipe(stage.recipe, home, stage.model)
    return pipeline


def load_dialogue(
    path: Path | str, question: str | None = None, home: Path | str | None = None
) -> DialogueSpec:
    """A dialogue file, checked against the home's models; ``question`` replaces its
    question."""
    from sandloop.loops.dialogue.spec import load_dialogue as load

    return load(Path(path), model_catalog(home), question)


def load_network(path: Path | str, home: Path | str | None = None) -> NetworkSpec:
    """A network file, checked against the home's models."""
    from sandloop.loops.network.spec import load_network as load

    return load(Path(path), model_catalog(home))


def load_run_spec(
    network_path: Path | str, *, home: Path | str | None = None, **fields: Any
) -> RunSpec:
    """A run of a network file: its genesis, seed, stop and pace as keywords, checked against
    the home's models."""
    from sandloop.registration import load_run_spec as load

    return load(network_path, model_catalog(home), **fields)


def run_spec_from(fields: dict[str, Any], home: Path | str | None = None) -> RunSpec:
    """A run given as a mapping, as deployments and the HTTP API pass it: ``network`` is a file
    path or the network itself."""
    from sandloop.registration import run_spec_from as from_fields

    return from_fields(fields, model_catalog(home))


def network_from(data: dict[str, Any], home: Path | str | None = None) -> NetworkSpec:
    """A network given as a mapping (over HTTP, say), checked as a file would be."""
    from sandloop.loops.network.spec import NetworkSpec as Network
    from sandloop.loops.spec_check import validated

    return validated(data, Network, "network", model_catalog(home))


def dialogue_from(
    data: dict[str, Any], question: str | None = None, home: Path | str | None = None
) -> DialogueSpec:
    """A dialogue given as a mapping (over HTTP, say), checked as a file would be."""
    from sandloop.loops.spec_check import validated

    fields = {**data, **({} if question is None else {"question": question})}
    return validated(fields, DialogueSpec, "dialogue", model_catalog(home))


# -- sessions ----------------------------------------------------------------------------


def open_session(prefix: str, home: Path | str | None = None) -> str:
    """The full id of the open session a prefix names (StoreError if it has ended)."""
    from sandloop import sessions
    from sandloop.storage.store import StoreError

    row = sessions.find(open_store(home, readonly=True), prefix)
    if row["status"] != "open":
        raise StoreError(f"session {row['id']} has ended; start a new one")
    return str(row["id"])


def start_session(
    title: str,
    home: Path | str | None = None,
    *,
    tags: list[str] | None = None,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A new open session (its row); runs join it with ``session=`` its id."""
    from sandloop import sessions

    return sessions.start(open_store(home), title, tags or [], metadata or {})


def end_session(prefix: str, home: Path | str | None = None) -> dict[str, Any]:
    """End a session: no more runs can join it."""
    from sandloop import sessions

    return sessions.end(open_store(home), prefix)


def list_sessions(
    home: Path | str | None = None, *, store: AkashicStore | None = None
) -> pd.DataFrame:
    """Sessions, newest first, with how many runs each holds."""
    from sandloop import sessions

    return sessions.listing(_reader(home, store))


def session_runs(
    prefix: str, home: Path | str | None = None
) -> tuple[dict[str, Any], pd.DataFrame]:
    """A session's row and its runs, dialogues and recipes with their phases."""
    from sandloop import sessions

    store = open_store(home, readonly=True)
    row = sessions.find(store, prefix)
    return row, sessions.runs_of(store, str(row["id"]))


def label_run(thread_prefix: str, phase: str, home: Path | str | None = None) -> dict[str, Any]:
    """Set a run's phase by hand; returns its runs row."""
    from sandloop import sessions

    return sessions.label(open_store(home), thread_prefix, phase)


def classify_session(
    prefix: str,
    home: Path | str | None = None,
    *,
    model: str | None = None,
    overwrite: bool = False,
) -> list[dict[str, str | None]]:
    """Label each run of a session (recipes aside) with its phase, by the classify-phase
    recipe; runs that have one keep it unless ``overwrite``. Per run: its thread, the phase,
    or the recipe's error."""
    from sandloop import sessions

    settings = settings_for(home)
    store = AkashicStore.for_settings(settings)
    row = sessions.find(store, prefix)
    labelled: list[dict[str, str | None]] = []
    for run in sessions.runs_of(store, str(row["id"])).to_dict(orient="records"):
        if (isinstance(run["phase"], str) and not overwrite) or run["kind"] == "recipe":
            continue
        text = sessions.describe_run(store, run)
        result = run_recipe("classify-phase", text, model=model, home=settings.home)
        if result.error is not None:
            labelled.append({"thread": run["thread"], "phase": None, "error": result.error})
            continue
        phase = str(result.parsed["phase"])
        sessions.label(store, str(run["thread"]), phase)
        labelled.append({"thread": run["thread"], "phase": phase, "error": None})
    return labelled


def find_step(store: AkashicStore, ref: str) -> dict[str, Any]:
    """The invocation a user names: ``THREAD:STEP`` (a thread prefix and a step number) or an
    invocation key (or a unique prefix of one, at least 8 characters)."""
    from sandloop.scoring import ScoreError
    from sandloop.storage.store import sql_str

    thread, colon, step = ref.partition(":")
    if colon:
        if not (step.isascii() and step.isdigit()) or len(step) > 12:  # "²" is a digit too
            raise ScoreError(f"{ref!r}: the step after ':' is a number (THREAD:STEP)")
        run = store.find_run(thread)
        rows = store.rows("invocations", f"thread = {sql_str(run['thread'])} AND step = {step}")
        if not rows:
            raise ScoreError(f"{ref}: thread {run['thread'][:12]} has no step {step}")
        return rows[0]
    prefix = ref.lower()
    if len(prefix) < 8 or not all(c in "0123456789abcdef" for c in prefix):
        raise ScoreError(
            f"{ref!r}: name a step as THREAD:STEP or by its key (8 or more hex characters; "
            "`sandloop show THREAD --json` lists them)"
        )
    rows = store.rows("invocations", f"key LIKE {sql_str(prefix + '%')}")
    if len(rows) != 1:
        raise ScoreError(
            f"no step has a key starting with {ref!r}"
            if not rows
            else f"{len(rows)} steps have keys starting with {ref!r}; give more characters"
        )
    return rows[0]


def rate(
    ref: str,
    score: float,
    home: Path | str | None = None,
    *,
    note: str | None = None,
    by: str | None = None,
) -> dict[str, Any]:
    """Record a person's 1-5 rating of one step; rating it again replaces the earlier one."""
    from sandloop.scoring import check_score, rating_row, user_id

    check_score(score)  # the arguments first: no lookup can mend them
    user_id(by)
    step = find_step(open_store(home, readonly=True), ref)  # a refusal creates nothing
    row = rating_row(step, score, by, note, ref)
    open_store(home).upsert("scores", [row])
    return row


def prefer(
    preferred: str,
    other: str,
    home: Path | str | None = None,
    *,
    note: str | None = None,
    by: str | None = None,
) -> dict[str, Any]:
    """Record that one step's output is better than another's for the same input."""
    from sandloop.scoring import preference_row, user_id

    user_id(by)
    store = open_store(home, readonly=True)  # a refusal creates nothing
    chosen, rejected = find_step(store, preferred), find_step(store, other)
    row = preference_row(chosen, rejected, by, note, (preferred, other))
    open_store(home).upsert("scores", [row])
    return row


def judge_snapshot(
    snapshot: str,
    recipe: str | None = None,
    home: Path | str | None = None,
    *,
    compare: bool = False,
    model: str | None = None,
    seed: int | None = None,
    limit: int | None = None,
) -> JudgeSummary:
    """Run a judge recipe over a snapshot as one Prefect flow run, and record each verdict as a
    `scores` row by ``judge:RECIPE@VERSION`` with the judge's invocation key: a 1-5 score per
    output (``judge-exchange`` by default), or with ``compare`` a preference per two answers to
    one prompt (``judge-pair``). A re-run reuses the verdicts already recorded."""
    from sandloop.exports import snapshot as snapshots
    from sandloop.flows.judge import judge_flow
    from sandloop.judging import Mode, check_judge
    from sandloop.loops.recipe.spec import load_recipe

    if limit is not None and limit < 1:
        raise SpecError(f"--limit {limit}: give at least 1")
    mode: Mode = "compare" if compare else "score"
    recipe = recipe or ("judge-pair" if compare else "judge-exchange")
    settings = settings_for(home)
    check_judge(load_recipe(recipe, catalog_for(settings), model), mode)  # before Prefect starts
    snapshots.get(open_store(settings.home, readonly=True), snapshot)
    parameters = {
        "snapshot": snapshot,
        "recipe": recipe,
        "model": model,
        "seed": seed,
        "limit": limit,
        "home": str(settings.home),
        "mode": mode,
    }
    return _summary_of(_call(judge_flow, parameters), JudgeSummary)


def push_export(
    folder: Path | str, repo: str, *, private: bool = False, user: str | None = None
) -> Any:
    """Upload an export folder to a Hub dataset repo (``HF_ENDPOINT`` names another Hub) with
    the user's hf key; returns the repo URL, the commit and the file count, never the token."""
    from sandloop.credentials import resolve_key
    from sandloop.exports.hub import PushError, check_export, check_repo, push

    path = Path(folder).expanduser()
    check_export(path)
    check_repo(repo)
    key = resolve_key("hf", user=user)
    if key is None:
        raise PushError("no Hugging Face token: `sandloop keys set hf`, or set HF_TOKEN")
    return push(path, repo, key.value, private=private)
