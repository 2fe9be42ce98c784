"""The act routes under ``/v1``: start a network run, a dialogue, a recipe or an export in the
background (202, with the thread and flow-run id at once), pin a snapshot, and follow a flow
run. Each is a call into `sandloop.api`; each checks its input before anything is written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi import Path as RoutePath
from starlette.concurrency import run_in_threadpool

from sandloop import api
from sandloop.exports.formats import formats_problem
from sandloop.loops.spec_files import SpecError
from sandloop.storage.store import NotFound
from sandloop.summaries import Started
from sandloop.web import schemas
from sandloop.web.auth import Runner, needs, reach
from sandloop.web.model_refs import check_served_refs, dialogue_refs, network_refs
from sandloop.web.reads import Thread
from sandloop.web.served import Conflict, Served, ServedBy

router = APIRouter()

RecipeName = Annotated[str, RoutePath(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")]
SnapshotName = Annotated[str, RoutePath(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")]
FlowRunId = Annotated[str, RoutePath(pattern=r"^[0-9a-fA-F-]{32,36}$")]
STARTED: dict[int | str, dict[str, Any]] = {202: {"model": schemas.Started}}


@router.post(
    "/v1/runs",
    status_code=202,
    response_model=schemas.Started,
    responses=STARTED,
    dependencies=[needs("run")],
)
def start_network(body: schemas.StartNetwork, served: ServedBy) -> dict[str, Any]:
    """Start (or resume: the same network, genesis and seed are the same thread) a network run."""
    spec = network_spec(
        served, body.network, body.genesis, body.seed, body.stop, body.pace, body.genesis_blob
    )
    session = _session(served, body.session)
    thread = api.thread_of(spec)
    started = served.start(
        thread,
        lambda: api.start_network(spec, served.launcher, served.home, session),
        {"name": spec.network.name, "genesis": body.genesis_blob or spec.genesis},
    )
    return answer(started)


UPLOAD = {
    "requestBody": {
        "required": True,
        "content": {
            kind: {"schema": {"type": "string", "format": "binary"}}
            for kind in ("image/png", "image/jpeg", "image/webp", "audio/wav", "audio/flac")
        },
    }
}


@router.post(
    "/v1/blobs",
    status_code=201,
    response_model=schemas.Uploaded,
    dependencies=[needs("run")],
    openapi_extra=UPLOAD,
)
async def upload_blob(request: Request, served: ServedBy) -> dict[str, Any]:
    """Upload an image or a sound (the body's bytes, up to the server's body limit) as a blob;
    its hash is the ``genesis_blob`` of a network that starts from one. A client never names a
    file on the server."""
    data = await request.body()
    return await run_in_threadpool(api.put_blob, data, served.home)


@router.post(
    "/v1/dialogues",
    status_code=202,
    response_model=schemas.Started,
    responses=STARTED,
    dependencies=[needs("run")],
)
def start_dialogue(body: schemas.StartDialogue, served: ServedBy) -> dict[str, Any]:
    """Start (or resume) a dialogue, given as its spec."""
    check_served_refs(dialogue_refs(body.dialogue), served.models_root(), "dialogue")
    spec = api.dialogue_from(body.dialogue, body.question, served.home)
    session = _session(served, body.session)
    started = served.start(
        spec.thread(body.seed),
        lambda: api.start_dialogue(spec, served.launcher, body.seed, served.home, session),
        {"name": spec.name, "genesis": spec.question},
    )
    return answer(started)


@router.post(
    "/v1/recipes/{name}/runs",
    status_code=202,
    response_model=schemas.Started,
    responses=STARTED,
    dependencies=[needs("run")],
)
def start_recipe(name: RecipeName, body: schemas.StartRecipe, served: ServedBy) -> dict[str, Any]:
    """Run a recipe (built in, or in the home's recipes folder) on an input."""
    if name not in api.recipe_names(served.home):
        raise NotFound(f"no recipe {name}; GET /v1/recipes lists them")
    check_served_refs([body.model or ""], served.models_root(), "model")
    spec = api.load_recipe(name, served.home, body.model)
    session = _session(served, body.session)
    started = served.start(
        None,
        lambda: api.start_recipe(
            spec,
            body.input,
            served.launcher,
            context=body.context,
            seed=body.seed,
            session=session,
            home=served.home,
        ),
        {"name": spec.name, "genesis": body.input},
    )
    return answer(started)


@router.post(
    "/v1/snapshots",
    status_code=201,
    response_model=schemas.Snapshot,
    dependencies=[needs("run")],
)
def create_snapshot(body: schemas.NewSnapshot, served: ServedBy) -> dict[str, Any]:
    """Pin a selection of runs under a name (409 for a name already taken)."""
    if body.name in _snapshot_names(served):
        raise Conflict(f"a snapshot named {body.name!r} exists; pick another name")
    selection = body.model_dump(exclude={"name"}, exclude_unset=True)
    row = api.create_snapshot(body.name, served.home, **selection)
    return {
        "name": row["name"],
        "created_at": row["created_at"],
        "runs": row["threads"],
        "selection": json.loads(row["selection"]),
    }


@router.post(
    "/v1/snapshots/{name}/exports",
    status_code=202,
    response_model=schemas.Started,
    responses=STARTED,
    dependencies=[needs("run")],
)
def start_export(name: SnapshotName, body: schemas.StartExport, served: ServedBy) -> dict[str, Any]:
    """Export a snapshot into the server's exports folder, as ``SNAPSHOT/FORMATS`` (by default
    beside the home: ``HOME-exports``), replacing an earlier export of the same snapshot and
    formats (a snapshot is pinned: it is the same)."""
    if name not in _snapshot_names(served):
        raise NotFound(f"no snapshot {name}; GET /v1/snapshots lists them")
    out = exports_folder(served, name, body.formats)
    started = served.start(
        None,
        lambda: api.start_export(
            name,
            body.formats,
            out,
            served.launcher,
            served.home,
            val_fraction=body.val_fraction,
            dedupe=body.dedupe,
            overwrite=True,
            redact=body.redact,
            license_id=body.license,
            language=body.language,
        ),
    )
    return answer(started)


@router.post("/v1/runs/{thread}/cancel", status_code=202, response_model=schemas.Cancel)
def cancel_run(thread: Thread, served: ServedBy, grant: Runner) -> dict[str, Any]:
    """Stop a network run or a dialogue after the step under way; one that waits to start, or
    waits for a scheduled continuation, never starts. Every recorded step is kept, and starting
    the same run again resumes it. 409 for a run that is not going."""
    served.readable_run(thread, reach(grant))  # someone else's chat: no such run
    return served.cancel(thread)


@router.post("/v1/runs/{thread}/publish", response_model=schemas.Published)
def publish_run(thread: Thread, served: ServedBy, grant: Runner) -> dict[str, Any]:
    """Put a network run on the public gallery (``/gallery/{thread}``); runs are private
    until published, except those visitors start. 422 for a chat, a dialogue or a recipe."""
    served.readable_run(thread, reach(grant))  # someone else's chat: no such run
    return api.publish_run(thread, served.home)


@router.delete("/v1/runs/{thread}/publish", response_model=schemas.Published)
def withdraw_run(thread: Thread, served: ServedBy, grant: Runner) -> dict[str, Any]:
    """Take a run off the public gallery."""
    served.readable_run(thread, reach(grant))
    return api.publish_run(thread, served.home, public=False)


@router.get(
    "/v1/flow-runs/{flow_run_id}", response_model=schemas.FlowRun, dependencies=[needs("read")]
)
def flow_run(flow_run_id: FlowRunId) -> dict[str, Any]:
    """A flow run's state in Prefect: how a client follows what it started."""
    return api.flow_run_state(flow_run_id)


def network_spec(
    served: Served,
    network: str | dict[str, Any],
    genesis: str | None,
    seed: int | None,
    stop: dict[str, Any],
    pace: dict[str, Any] | None,
    genesis_blob: str | None = None,
) -> Any:
    """A run spec from a request. A network by name must be one the server offers: a client
    never names a file on the server. An image or audio genesis is never a path either: it is
    a blob (uploaded, or a step's output), named by its hash, which the server writes out
    itself (`api.blob_genesis`); a text genesis for such a network is refused from the network
    alone, so the answer does not depend on what exists on the server. A model given by path
    must be under the server's models folder (`web.model_refs`)."""
    if isinstance(network, str):
        if network not in served.networks:
            offered = ", ".join(sorted(served.networks)) or "none (start with --network FILE)"
            raise NotFound(f"no network {network} on this server; offered: {offered}")
        checked = api.load_network(served.networks[network], served.home)
        network = str(served.networks[network])
    else:
        refs = network_refs(network)
        check_served_refs(refs, served.models_root(), "network.models")
        served.ceilings.check_models(len(refs))
        checked = api.network_from(network, served.home)
    if checked.input_type == "text":
        if genesis is None:
            raise SpecError("genesis: this network starts from text; give genesis, not a blob")
    elif genesis_blob is None:
        raise SpecError(
            f"genesis_blob: this network starts from {checked.input_type}: upload it "
            "(POST /v1/blobs) and give its hash; a genesis is never a path on the server"
        )
    else:
        genesis = api.blob_genesis(
            genesis_blob, checked.input_type, served.home, store=served.store()
        )
    fields: dict[str, Any] = {"network": network, "genesis": genesis, "seed": seed, "stop": stop}
    if pace is not None:
        fields["pace"] = pace
    spec = api.run_spec_from(fields, served.home)
    served.ceilings.check(spec)
    return spec


def exports_folder(served: Served, snapshot: str, formats: list[str]) -> Path:
    """Where an export started over HTTP goes: the server's exports folder (a store's home
    holds no exports), by snapshot and formats; a client never names a path on the server,
    and a format is a name from the table (checked again here, before the path is built)."""
    problem = formats_problem(formats)
    if problem is not None:
        raise SpecError(f"formats: {problem}")
    if served.exports is not None:
        root = Path(served.exports)
    else:
        home = Path(api.settings_for(served.home).home)
        root = home.parent / f"{home.name}-exports"
    return root / snapshot / "+".join(sorted(set(formats)))


def _snapshot_names(served: Served) -> set[str]:
    return set(api.list_snapshots(served.home)["name"].astype(str))


def _session(served: Served, prefix: str | None) -> str | None:
    return None if prefix is None else api.open_session(prefix, served.home)


def answer(started: Started) -> dict[str, Any]:
    thread = started.thread
    links = {"flow_run": f"/v1/flow-runs/{started.flow_run_id}"}
    if started.kind != "export":
        links |= {
            "run": f"/v1/runs/{thread}",
            "steps": f"/v1/runs/{thread}/steps",
            "events": f"/v1/runs/{thread}/events",
            "gallery": f"/gallery/{thread}",
        }
    return {**started.as_dict(), "links": links}
