"""`sandloop sweep run|list|show|report`: batch experiments over many threads."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from sandloop.cli.common import (
    HomeOption,
    JsonOption,
    SessionOption,
    app,
    err,
    out,
    prepare_prefect,
)
from sandloop.cli.output import Column, print_records, short_id, text, when
from sandloop.cli.sessions import resolve_session

if TYPE_CHECKING:
    import pandas as pd

sweep_app = typer.Typer(help="Sweeps: many network runs advanced together.", no_args_is_help=True)
app.add_typer(sweep_app, name="sweep")


@sweep_app.command("run")
def sweep_run(
    spec_path: Annotated[Path, typer.Argument(help="A sweep file (YAML or JSON).")],
    home: HomeOption = None,
    session: SessionOption = None,
    as_json: JsonOption = False,
    verbose: Annotated[bool, typer.Option("--verbose", help="Show Prefect's logs.")] = False,
) -> None:
    """Run a sweep: every network × genesis × seed as its own thread, advanced together with
    one batched model call per tick and model. Run it again to go on after a kill: finished
    threads are left as they are."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    prepare_prefect(verbose)
    from sandloop import api
    from sandloop.progress import Event, SweepTick, observing

    spec = api.load_sweep(spec_path)  # a bad spec fails here, before anything is written
    duplicates = spec.duplicates()
    if duplicates:
        err.print(
            f"warning: {duplicates} member(s) repeat a network, genesis and seed; each is one "
            "thread",
            highlight=False,
        )
    settings = api.settings_for(home)
    session = resolve_session(settings.home, session)
    total = spec.size() - duplicates
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("threads · {task.fields[steps]} steps · {task.fields[rate]} steps/s"),
        TimeElapsedColumn(),
        console=err,
        disable=as_json,
    )
    bar = progress.add_task(f"sweep {spec.name}", total=total, steps=0, rate="-")
    started = time.monotonic()

    def on_tick(event: Event) -> None:
        if isinstance(event, SweepTick):
            rate = event.steps / max(time.monotonic() - started, 1e-9)
            progress.update(
                bar, completed=event.threads_done, steps=event.steps, rate=f"{rate:.0f}"
            )

    with progress, observing(on_tick):
        summary = api.run_sweep(spec, settings.home, session)
        progress.update(bar, completed=summary.threads_done)
    if as_json:
        out.print_json(data=summary.as_dict())
    else:
        reasons = ", ".join(f"{r} {n}" for r, n in summary.stop_reasons.items()) or "none"
        out.print(
            f"sweep [bold]{summary.name}[/]: {summary.threads_done}/{summary.threads} threads "
            f"done, {summary.steps_this_session} steps this run in {summary.duration_s:.1f} s "
            f"({summary.task_runs} task runs); stopped: {reasons}"
            + (f"; {summary.already_finished} finished before" if summary.already_finished else "")
            + (f"; {summary.busy} left to another process" if summary.busy else ""),
            highlight=False,
        )
        _print_report(api.sweep_report(summary.name, settings.home), as_json=False)
    if summary.failed:
        raise typer.Exit(1)


@sweep_app.command("list")
def sweep_list(home: HomeOption = None, as_json: JsonOption = False) -> None:
    """Sweeps, newest first."""
    from sandloop import api

    print_records(
        api.list_sweeps(home),
        [
            Column("name"),
            Column("status"),
            Column("threads_done", "done", justify="right"),
            Column("threads", justify="right"),
            Column("steps", justify="right"),
            Column("created_at", "created", show=when),
        ],
        as_json=as_json,
        empty="no sweeps yet; run one with `sandloop sweep run SPEC.yaml`",
    )


@sweep_app.command("show")
def sweep_show(
    name: Annotated[str, typer.Argument(help="A sweep's name.")],
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """A sweep's threads: network, genesis, seed, and how each run stands."""
    from sandloop import api

    print_records(
        api.sweep_threads(name, home),
        [
            Column("thread", show=short_id, no_wrap=True),
            Column("network", no_wrap=True),
            Column("genesis", overflow="ellipsis", no_wrap=True, max_width=40),
            Column("seed", justify="right"),
            Column("status"),
            Column("stop_reason", "stop"),
            Column("steps", justify="right"),
            Column("loop_length", "loop", justify="right", show=_whole),
        ],
        as_json=as_json,
    )


@sweep_app.command("report")
def sweep_report(
    name: Annotated[str, typer.Argument(help="A sweep's name.")],
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Per network × genesis: how the threads ended, their steps and the loops they fell into."""
    from sandloop import api

    _print_report(api.sweep_report(name, home), as_json)


def _print_report(report: pd.DataFrame, as_json: bool) -> None:
    print_records(
        report,
        [
            Column("network", no_wrap=True),
            Column("genesis", overflow="ellipsis", no_wrap=True, max_width=40),
            Column("threads", justify="right"),
            Column("stop_reasons", "stopped"),
            Column("steps_mean", "steps (mean)", justify="right"),
            Column("steps_max", "max", justify="right"),
            Column("looped", justify="right"),
            Column("loop_length_median", "loop (median)", justify="right", show=_whole),
        ],
        as_json=as_json,
    )


def _whole(value: object) -> str:
    shown = text(value)
    return shown.removesuffix(".0")
