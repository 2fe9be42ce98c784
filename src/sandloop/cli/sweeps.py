"""`sandloop sweep run|list|show|report`: batch experiments over many threads."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from sandloop.cli.common import (
    HomeOption,
    JsonOption,
    SessionOption,
    WideOption,
    app,
    err,
    out,
    prepare_prefect,
    suggest_a_server_once,
)
from sandloop.cli.output import Column, print_records, short_id, text, when
from sandloop.cli.sessions import resolve_session
from sandloop.display import counted

if TYPE_CHECKING:
    import pandas as pd

    from sandloop.api import Trajectories

sweep_app = typer.Typer(help="Sweeps: many network runs advanced together.", no_args_is_help=True)
app.add_typer(sweep_app, name="sweep")


@sweep_app.command("run")
def sweep_run(
    spec_path: Annotated[Path, typer.Argument(help="A sweep file (YAML or JSON).")],
    home: HomeOption = None,
    session: SessionOption = None,
    as_json: JsonOption = False,
    verbose: Annotated[bool, typer.Option("--verbose", help="Show Prefect's logs.")] = False,
    redefine: Annotated[
        bool,
        typer.Option(
            "--redefine",
            help="Let this spec replace a sweep of the same name that had other networks, "
            "genesis prompts or seeds.",
        ),
    ] = False,
) -> None:
    """Run a sweep: every network × genesis × seed as its own thread, advanced together with
    one batched model call per tick and model. Run it again to go on after a kill: finished
    threads are left as they are."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    temporary_server = prepare_prefect(verbose)
    from sandloop import api
    from sandloop.progress import Event, SweepTick, observing

    spec = api.load_sweep(spec_path, home)  # a bad spec fails here, before anything is written
    duplicates = spec.duplicates()
    if duplicates:
        err.print(
            f"warning: {duplicates} member(s) repeat a network, genesis and seed; each is one "
            "thread",
            highlight=False,
        )
    settings = api.settings_for(home)
    api.check_sweep_name(spec, api.open_store(settings.home, readonly=True), redefine=redefine)
    session = resolve_session(settings.home, session)
    if temporary_server and not as_json:
        suggest_a_server_once()
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
        summary = api.run_sweep(spec, settings.home, session, redefine=redefine)
        progress.update(bar, completed=summary.threads_done)
    if as_json:
        out.print_json(data=summary.as_dict())
    else:
        reasons = ", ".join(f"{r} {n}" for r, n in summary.stop_reasons.items()) or "none"
        out.print(
            f"sweep [bold]{summary.name}[/]: {summary.threads_done}/{summary.threads} threads "
            f"done, {counted(summary.steps_this_session, 'step')} this run in "
            f"{summary.duration_s:.1f} s ({counted(summary.task_runs, 'task run')}); "
            f"stopped: {reasons}"
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
            Column("name", no_wrap=True, overflow="ellipsis", max_width=30),
            Column("status", no_wrap=True, min_width=11),
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
    wide: WideOption = False,
) -> None:
    """A sweep's threads and how each run stands (--wide adds genesis and seed)."""
    from sandloop import api

    print_records(
        api.sweep_threads(name, home),
        [
            Column("thread", show=short_id, no_wrap=True, min_width=10),
            Column("network", no_wrap=True, overflow="ellipsis", max_width=20),
            Column("genesis", overflow="ellipsis", no_wrap=True, max_width=40, wide=True),
            Column("seed", justify="right", no_wrap=True, wide=True),
            Column("status", no_wrap=True, min_width=11),
            Column("stop_reason", "stop", no_wrap=True, overflow="ellipsis", min_width=9),
            Column("steps", justify="right", no_wrap=True, min_width=5),
            Column("loop_length", "loop", justify="right", show=_whole, no_wrap=True),
        ],
        as_json=as_json,
        compact=True,
        wide=wide,
    )


@sweep_app.command("report")
def sweep_report(
    name: Annotated[str, typer.Argument(help="A sweep's name.")],
    home: HomeOption = None,
    as_json: JsonOption = False,
    embed_model: Annotated[
        str | None,
        typer.Option("--embed-model", help="Vectors of this model (default: the configured one)."),
    ] = None,
    clusters: Annotated[
        int | None,
        typer.Option(
            "--clusters", min=1, max=100, help="Clusters of final outputs (default: √(n/2), ≤ 8)."
        ),
    ] = None,
    converge_above: Annotated[
        float | None,
        typer.Option(
            "--converge-above",
            min=0.0,
            max=1.0,
            help="Cosine counted as converged (default: the sweep's stop rule, else 0.95).",
        ),
    ] = None,
    no_embed: Annotated[
        bool,
        typer.Option("--no-embed", help="Use only vectors already stored; embed nothing."),
    ] = False,
    plots: Annotated[
        Path | None,
        typer.Option("--plots", help="Write one PNG per network into this folder."),
    ] = None,
) -> None:
    """How a sweep's threads ended (per network × genesis), then their trajectories: drift
    from the genesis and from the step before, how often and when they fell into exact loops
    or converged, and clusters of their final outputs with a medoid each. Outputs without a
    vector are embedded first (and kept)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from sandloop import api
    from sandloop.plots import plots_folder, save_figures

    summary = api.sweep_report(name, home)
    if plots is not None:
        plots_folder(plots)  # before any work: a folder that cannot be written fails first
    progress = Progress(
        TextColumn("[bold]trajectories"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("threads · {task.fields[embedded]} outputs embedded"),
        console=err,
        transient=True,
        disable=as_json,
    )
    bar = progress.add_task("read", total=int(summary["threads"].sum()), embedded=0)
    with progress:
        trajectories = api.sweep_trajectories(
            name,
            home,
            embedding_model=embed_model,
            clusters=clusters,
            converge_above=converge_above,
            embed=not no_embed,
            on_chunk=lambda n, embedded: progress.update(bar, advance=n, embedded=embedded),
        )
    written = save_figures(trajectories, plots, name) if plots is not None else []
    if as_json:
        out.print_json(
            data={
                "summary": json.loads(summary.to_json(orient="records")),
                "trajectories": trajectories.as_dict(),
                "plots": [str(p) for p in written],
            }
        )
        return
    _print_report(summary, as_json=False)
    _print_trajectories(trajectories)
    for path in written:
        err.print(f"wrote {path}", highlight=False)


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


#: Steps shown in the drift table (and the last one); `--json` has every step.
DRIFT_STEPS = (0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
SPARKS = "▁▂▃▄▅▆▇█"


def _print_trajectories(trajectories: Trajectories) -> None:
    drift = trajectories.drift
    outcomes = trajectories.outcomes.to_dict(orient="records")
    for row in outcomes:
        series = drift[drift["network"] == row["network"]]["to_genesis"].tolist()
        row["drift"] = _sparkline(series)
        row["looped"] = f"{row['looped']}/{row['threads']}"
        row["converged"] = f"{row['converged']}/{row['threads']}"
    print_records(
        outcomes,
        [
            Column("network", no_wrap=True),
            Column("looped", justify="right", no_wrap=True),
            Column("loop_step_median", "step", justify="right", show=_whole, no_wrap=True),
            Column("converged", justify="right", no_wrap=True),
            Column("converged_step_median", "step", justify="right", show=_whole, no_wrap=True),
            Column("drift", "cos to genesis", no_wrap=True),
        ],
        as_json=False,
        title=f"trajectories ({trajectories.embedding_model}; converged: cos ≥ "
        f"{trajectories.converge_above:g} to one of the last {trajectories.converge_window} "
        "outputs; step: the median step it happened at; cos to genesis: first step → last)",
        empty="no thread has recorded a step yet",
    )
    last = drift.groupby("network", sort=False)["step"].transform("max")
    shown = drift[drift["step"].isin(DRIFT_STEPS) | (drift["step"] == last)]
    print_records(
        shown,
        [
            Column("network", no_wrap=True),
            Column("step", justify="right"),
            Column("threads", justify="right"),
            Column("to_genesis", "cos to genesis", justify="right", show=_cosine),
            Column("to_genesis_sd", "sd", justify="right", show=_cosine),
            Column("to_previous", "cos to step before", justify="right", show=_cosine),
            Column("to_previous_sd", "sd", justify="right", show=_cosine),
        ],
        as_json=False,
        title="semantic drift (mean over threads; --json has every step)",
    )
    print_records(
        trajectories.clusters,
        [
            Column("cluster", justify="right"),
            Column("threads", justify="right"),
            Column("networks"),
            Column("medoid", "medoid (the final output that stands for it)", max_width=70),
            Column("medoid_thread", "thread", show=short_id, no_wrap=True),
        ],
        as_json=False,
        title="clusters of final outputs",
    )
    if trajectories.embedded:
        err.print(
            f"embedded {trajectories.embedded} outputs with {trajectories.embedding_model} "
            "(kept in the store)",
            highlight=False,
        )


def _sparkline(values: list[float], width: int = 12) -> str:
    """Values from −1 to 1 as block characters, averaged into at most ``width`` bins."""
    if not values:
        return ""
    bins = [values[i * len(values) // width : (i + 1) * len(values) // width] for i in range(width)]
    means = [sum(b) / len(b) for b in bins if b] if len(values) > width else values
    marks = "".join(SPARKS[min(7, max(0, int((m + 1) / 2 * 8)))] for m in means)
    return f"{values[0]:.2f} {marks} {values[-1]:.2f}"


def _cosine(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, float) and value == value else text(value)


def _percent(value: object) -> str:
    return f"{value:.0%}" if isinstance(value, float) and value == value else text(value)
