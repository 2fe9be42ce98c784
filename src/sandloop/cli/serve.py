"""`sandloop serve SPEC.yaml`: one spec as a Prefect deployment, served by this process.

For users without a work pool: the process registers the deployment (with a schedule if given),
then runs its flow runs as they come due, continuations of paced runs included, until stopped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from sandloop.cli.common import (
    HomeOption,
    SessionOption,
    app,
    err,
    fail,
    out,
)
from sandloop.cli.runs import parse_pace


def _seed(text: str | None, scheduled: bool) -> int | str | None:
    """An integer, 'scheduled' (each firing its own thread) or 'none'; a schedule defaults to
    'scheduled', or every firing would resume the same thread."""
    if text is None:
        return "scheduled" if scheduled else None
    if text in ("scheduled", "none"):
        return None if text == "none" else text
    try:
        return int(text)
    except ValueError:
        fail(f"--seed {text!r}: use a number, 'scheduled' or 'none'")


def _deployment_of(
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
    """The flow that runs this kind of spec, and its parameters; the spec is checked here, so a
    bad one fails now rather than at every firing."""
    from sandloop import api
    from sandloop.loops.dialogue.spec import load_dialogue
    from sandloop.loops.recipe.spec import load_pipeline, load_recipe
    from sandloop.loops.spec_files import read_mapping, spec_kind

    kind = spec_kind(read_mapping(path), str(path))
    common = {"home": home, "session": session}
    if kind == "network":
        from sandloop.flows.network import network_run

        if genesis is None:
            fail(f"{path} is a network: give --genesis, its first input")
        run = {"network": str(path), "genesis": genesis, "seed": seed, "stop": stop, "pace": pace}
        check_seed = 0 if seed == "scheduled" else seed
        api.load_run_spec(path, genesis=genesis, seed=check_seed, stop=stop, pace=pace)
        return network_run, {"run": run, **common}
    if kind == "dialogue":
        from sandloop.flows.dialogue import dialogue_flow

        load_dialogue(path, question)
        return dialogue_flow, {"spec": str(path), "question": question, "seed": seed, **common}
    from sandloop.flows.recipe import pipeline_flow, recipe_flow

    if input_text is None:
        fail(f"{path} is a {kind}: give --input, the text it works on")
    if isinstance(seed, str):
        fail(f"a {kind}'s --seed is a number: the same input and seed is the same result")
    if kind == "pipeline":
        load_pipeline(path)
        return pipeline_flow, {"pipeline": str(path), "input": input_text, "seed": seed, **common}
    from sandloop.config import Settings

    load_recipe(str(path), Settings.for_home(home).local_dir)
    return recipe_flow, {"recipe": str(path), "input": input_text, "seed": seed, **common}


@app.command()
def serve(
    spec_path: Annotated[
        Path, typer.Argument(help="A network, dialogue, recipe or pipeline spec (YAML or JSON).")
    ],
    name: Annotated[
        str | None, typer.Option(help="Deployment name (default: the file's stem).")
    ] = None,
    cron: Annotated[
        str | None, typer.Option(help="Run on this cron schedule, e.g. '0 */6 * * *'.")
    ] = None,
    interval: Annotated[
        float | None, typer.Option(min=1, help="Run every this many seconds.")
    ] = None,
    genesis: Annotated[str | None, typer.Option(help="A network's first input.")] = None,
    question: Annotated[str | None, typer.Option(help="A dialogue's question.")] = None,
    input_text: Annotated[
        str | None, typer.Option("--input", help="A recipe's or pipeline's input text.")
    ] = None,
    seed: Annotated[
        str | None,
        typer.Option(help="A number, 'scheduled' (default with a schedule) or 'none'."),
    ] = None,
    max_steps: Annotated[int | None, typer.Option(help="A network's steps.")] = None,
    pace: Annotated[
        str, typer.Option(help="none | constant:S | exponential:BASE,FACTOR,CAP | panic")
    ] = "none",
    hand_off_after: Annotated[
        float | None,
        typer.Option(
            help="Pace waits longer than this many seconds end the flow run and "
            "schedule its continuation (default 30)."
        ),
    ] = None,
    now: Annotated[bool, typer.Option("--now", help="Also start one run right away.")] = False,
    limit: Annotated[
        int | None, typer.Option(min=1, help="At most this many runs at once.")
    ] = None,
    home: HomeOption = None,
    session: SessionOption = None,
) -> None:
    """Serve a spec as a Prefect deployment from this process, until Ctrl-C.

    Needs a Prefect server (`sandloop server start`, or PREFECT_API_URL); its UI shows the
    deployment, its schedule and every run. A paced network's long waits become scheduled
    continuations of the deployment, which this process runs when they come due.
    """
    from sandloop.cli.common import prepare_prefect

    prepare_prefect(verbose=True)
    from prefect.settings import PREFECT_API_URL

    from sandloop import api

    if cron is not None and interval is not None:
        fail("give --cron or --interval, not both")
    pace_fields = parse_pace(pace)
    if hand_off_after is not None:
        if pace_fields["kind"] == "none":
            fail("--hand-off-after needs a --pace")
        pace_fields["hand_off_after_s"] = hand_off_after
    stop = {"max_steps": max_steps} if max_steps is not None else {}
    settings = api.settings_for(home)
    flow, parameters = _deployment_of(
        spec_path.resolve(),
        genesis=genesis,
        question=question,
        input_text=input_text,
        seed=_seed(seed, scheduled=cron is not None or interval is not None),
        stop=stop,
        pace=pace_fields,
        home=str(settings.home),
        session=session,
    )
    if not PREFECT_API_URL.value():
        fail(
            "sandloop serve needs a Prefect server: run `sandloop server start` (or point "
            "PREFECT_API_URL at one)"
        )
    _serve(flow, name or spec_path.stem, parameters, cron, interval, now, limit)


def _serve(
    flow: Any,
    name: str,
    parameters: dict[str, Any],
    cron: str | None,
    interval: float | None,
    now: bool,
    limit: int | None,
) -> None:
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
        err.print(f"started flow run [bold]{flow_run.name}[/]", highlight=False)
    out.print(f"serving [bold]{flow.name}/{name}[/] (Ctrl-C stops)", highlight=False)
    prefect_serve(deployment, limit=limit, print_starting_message=False)
