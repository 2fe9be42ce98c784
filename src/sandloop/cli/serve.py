"""`sandloop serve SPEC.yaml`: one spec as a Prefect deployment, served by this process.

For users without a work pool: the process registers the deployment (with a schedule if given),
then runs its flow runs as they come due, continuations of paced runs included, until stopped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

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
    flow, parameters = api.deployable(
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
    out.print(
        f"serving [bold]{flow.name}/{name or spec_path.stem}[/] (Ctrl-C stops)", highlight=False
    )
    api.serve(
        flow,
        name or spec_path.stem,
        parameters,
        cron=cron,
        interval=interval,
        now=now,
        limit=limit,
        started=lambda run: err.print(f"started flow run [bold]{run}[/]", highlight=False),
    )
