"""Commands that run loops and read their record: run, runs, show, cancel, models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from sandloop.cli.common import (
    INTERRUPTED,
    HomeOption,
    JsonOption,
    SessionOption,
    WideOption,
    app,
    err,
    fail,
    out,
    prepare_prefect,
    suggest_a_server_once,
)
from sandloop.cli.output import Column, print_records, short_id, when
from sandloop.cli.sessions import resolve_session
from sandloop.display import audio_label, counted, excerpt, status_line, whole_numbers
from sandloop.summaries import RunSummary


def parse_pace(text: str, option: str = "--pace") -> dict[str, Any]:
    """'none', 'constant:S', 'exponential:BASE,FACTOR,CAP' or 'panic' (PANIC's age buckets)."""
    kind, _, args = text.partition(":")
    try:
        numbers = [float(a) for a in args.split(",")] if args else []
    except ValueError:
        fail(f"{option} {text!r}: arguments must be numbers")
    if kind == "none" and not numbers:
        return {"kind": "none"}
    if kind == "constant" and len(numbers) == 1:
        return {"kind": "constant", "seconds": numbers[0]}
    if kind == "exponential" and len(numbers) == 3:
        return dict(zip(("base", "factor", "cap"), numbers, strict=True)) | {"kind": "exponential"}
    if kind == "panic" and not numbers:
        return {"kind": "age_buckets"}
    fail(
        f"{option} {text!r} not understood; use none, constant:SECONDS, "
        "exponential:BASE,FACTOR,CAP or panic"
    )


def _steps_table(steps: Any, title: str) -> Table:
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for column, justify in (
        ("step", "right"),
        ("model", "left"),
        ("output", "left"),
        ("latency", "right"),
        ("status", "left"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for row in steps.itertuples(index=False):
        status = row.status if row.status == "ok" else f"[red]{row.status}[/]: {row.error}"
        table.add_row(
            str(row.step),
            row.facet,
            _shown(row),
            f"{row.latency_ms:.0f} ms",
            status,
        )
    return table


def _shown(row: Any) -> str:
    """An output as its table cell; an audio step says how long it plays."""
    if row.output_type == "audio" and row.status == "ok":
        return f"<{audio_label(row.metadata)} {str(row.output)[:10]}>"
    return excerpt(row.output, row.output_type)


def _step_dicts(steps: Any) -> list[dict[str, Any]]:
    keep = [
        "step",
        "key",
        "parent_key",
        "facet",
        "model",
        "input",
        "output",
        "output_type",
        "status",
        "error",
        "latency_ms",
        "started_at",
        "finished_at",
    ]
    frame = steps[keep].copy()
    for column in ("started_at", "finished_at"):
        frame[column] = frame[column].map(lambda t: t.isoformat() if t is not None else None)
    records: list[dict[str, Any]] = json.loads(frame.to_json(orient="records"))
    return records


@app.command()
def run(
    network: Annotated[Path, typer.Argument(help="Network spec (YAML or JSON).")],
    genesis: Annotated[
        str, typer.Option(help="The first input: text, or an image or audio file path.")
    ],
    seed: Annotated[int | None, typer.Option(help="Seed; the same seed repeats the run.")] = None,
    max_steps: Annotated[int | None, typer.Option(help="Stop after this many steps.")] = None,
    max_duration: Annotated[
        float | None, typer.Option(help="Stop this session after this many seconds.")
    ] = None,
    stop_on_repeat: Annotated[
        bool, typer.Option(help="Stop when an output repeats exactly (seeded runs).")
    ] = True,
    converge_above: Annotated[
        float | None,
        typer.Option(help="Stop when an output's embedding has this cosine to a recent one."),
    ] = None,
    converge_window: Annotated[
        int | None, typer.Option(help="How many recent outputs --converge-above compares.")
    ] = None,
    pace: Annotated[
        str, typer.Option(help="none | constant:S | exponential:BASE,FACTOR,CAP | panic")
    ] = "none",
    home: HomeOption = None,
    session: SessionOption = None,
    as_json: JsonOption = False,
    verbose: Annotated[bool, typer.Option("--verbose", help="Show Prefect's logs.")] = False,
) -> None:
    """Run a network: each model's output is the next one's input, from GENESIS.

    Running the same network, genesis and seed again resumes the run where it stopped.
    """
    temporary_server = prepare_prefect(verbose)
    from sandloop import api

    stop: dict[str, Any] = {"stop_on_repeat": stop_on_repeat}
    if max_steps is not None:
        stop["max_steps"] = max_steps
    if max_duration is not None:
        stop["max_duration_s"] = max_duration
    if converge_above is not None:
        stop["converge_above"] = converge_above
    if converge_window is not None:
        stop["converge_window"] = converge_window
    settings = api.settings_for(home)
    session = resolve_session(settings.home, session)
    spec = api.load_run_spec(
        network, home=settings.home, genesis=genesis, seed=seed, stop=stop, pace=parse_pace(pace)
    )
    # An unwritable home, or a thread another process runs, fails here, before models load.
    api.ensure_idle(api.open_store(settings.home), spec)
    if temporary_server and not as_json:
        suggest_a_server_once()
    status = err.status("preparing models…")
    with status:
        api.prepare_models(spec, settings.home, lambda m: status.update(m))
    summary = _run_with_progress(spec, settings.home, quiet=as_json, session=session)
    steps = api.run_steps(summary.thread, settings.home)
    if as_json:
        out.print_json(data={**summary.as_dict(), "steps": _step_dicts(steps)})
    else:
        _print_summary(summary, steps)
    if summary.status in ("failed", "cancelled"):
        raise typer.Exit(1)


def _run_with_progress(
    spec: Any, home: Path | str, quiet: bool, session: str | None = None
) -> RunSummary:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from sandloop import api
    from sandloop.progress import Event, StepEvent, observing

    total = spec.stop.max_steps
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=quiet,
        transient=False,
    )
    bar = progress.add_task(spec.network.name, total=total)
    reached = [0]  # the step under way: every one before it is recorded

    def on_step(event: Event) -> None:
        if not isinstance(event, StepEvent):
            return
        if event.status == "waiting":
            progress.update(
                bar, description=f"{spec.network.name} · waiting {event.waiting_s:.0f}s"
            )
            return
        reached[0] = event.step + 1
        progress.update(
            bar,
            completed=event.step + 1,
            description=f"{spec.network.name} · step {event.step} · {event.model}",
        )

    with progress, observing(on_step):
        try:
            return api.run_network(spec, home, session)
        except KeyboardInterrupt:
            progress.remove_task(bar)
            if not reached[0]:
                fail(INTERRUPTED, code=130)
            fail(
                f"interrupted at step {reached[0]}; the steps before it are kept: run the same "
                "command to resume",
                code=130,
            )
        except BaseException:
            progress.remove_task(bar)  # the error line says it all
            raise


def _print_summary(summary: RunSummary, steps: Any) -> None:
    if summary.already_finished:
        out.print(f"run already finished ({summary.stop_reason}); showing its record")
    out.print(_steps_table(steps, f"{summary.name} · {counted(summary.steps_total, 'step')}"))
    reason = summary.stop_reason
    if summary.loop_length:
        reason += f" (loop length {summary.loop_length})"
    colour = {"failed": "red", "cancelled": "yellow"}.get(summary.status, "green")
    out.print(f"[{colour}]{status_line(summary.status, reason)}[/]", highlight=False)
    if summary.error:
        out.print(f"[red]{summary.error}[/]", highlight=False)
    if summary.status == "cancelled":
        out.print("every step so far is kept: run the same command to resume", highlight=False)
    out.print(f"thread [bold]{summary.thread}[/]", highlight=False)


@app.command()
def runs(
    home: HomeOption = None,
    as_json: JsonOption = False,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Show the newest N runs.")] = 20,
    show_all: Annotated[bool, typer.Option("--all", help="Show every run.")] = False,
    wide: WideOption = False,
) -> None:
    """List recorded runs, newest first (the newest 20 unless --limit N or --all): thread, name,
    status, stop reason, steps and when; --wide adds kind, seed and genesis."""
    from sandloop import api

    frame = api.list_runs(home)
    more = 0 if show_all else max(0, len(frame) - limit)
    if more:
        frame = frame.head(limit)
    columns = [
        "thread",
        "name",
        "kind",
        "status",
        "stop_reason",
        "steps",
        "seed",
        "session",
        "phase",
        "created_at",
    ]
    if as_json:
        frame = whole_numbers(frame.reindex(columns=columns))
        frame["created_at"] = frame["created_at"].map(
            lambda t: t.isoformat() if t is not None else None
        )
    print_records(
        frame,
        [
            Column("thread", show=short_id, no_wrap=True, min_width=10),
            Column("name", no_wrap=True, overflow="ellipsis", max_width=20),
            Column("kind", no_wrap=True, wide=True),
            Column("status", no_wrap=True, min_width=11),
            Column("stop_reason", "stop", no_wrap=True, overflow="ellipsis", min_width=9),
            Column("steps", justify="right", no_wrap=True, min_width=5),
            Column("seed", show=_seed, justify="right", no_wrap=True, wide=True),
            Column(
                "genesis",
                show=lambda g: excerpt(g, "text", 30),
                ratio=1,
                overflow="ellipsis",
                no_wrap=True,
                wide=True,
            ),
            Column("created_at", "created", show=when, no_wrap=True, min_width=11),
        ],
        as_json=as_json,
        empty="no runs yet; start one with `sandloop run`",
        compact=True,
        wide=wide,
    )
    if more and not as_json:
        err.print(
            f"… and {more} older; --limit {limit + more} or --all shows them", highlight=False
        )
    if not as_json and len(frame) and (pending := api.pending_embeddings(home)):
        err.print(_not_embedded(pending), highlight=False)


def _not_embedded(pending: int) -> str:
    """Why a search may start by embedding: runs leave their embeddings to it."""
    return (
        f"{counted(pending, 'output')} not embedded yet; the next `sandloop search` (or "
        "`sandloop embed`) embeds them"
    )


def _seed(seed: Any) -> str:
    return "" if seed is None or seed != seed else str(int(seed))


def _next_due(run_row: dict[str, Any]) -> Any:
    """When a run that handed off its wait continues (None unless it is waiting)."""
    due = run_row.get("next_due_at")
    if run_row["status"] != "waiting" or due is None or due != due:  # NaT
        return None
    return due


@app.command()
def show(
    thread: Annotated[str, typer.Argument(help="A thread id or a unique prefix of one.")],
    home: HomeOption = None,
    as_json: JsonOption = False,
    full: Annotated[bool, typer.Option("--full", help="Print whole outputs.")] = False,
) -> None:
    """Print one run's steps."""
    from sandloop import api

    store = api.open_store(home, readonly=True)
    run_row = store.find_run(thread)
    steps = store.steps(str(run_row["thread"]))
    store.check_recorded(run_row, steps)
    if as_json:
        meta = {
            k: run_row[k] for k in ("thread", "realm", "name", "status", "stop_reason", "genesis")
        }
        due = _next_due(run_row)
        meta |= {"next_due_at": due.isoformat() if due else None}
        meta |= {"continuation": run_row.get("continuation") if due else None}
        pending = api.pending_embeddings(home, str(run_row["thread"]), store=store)
        meta |= {"embeddings_pending": pending}
        out.print_json(data={**meta, "steps": _step_dicts(steps)})
        return
    out.print(
        f"[bold]{run_row['name']}[/] · thread {run_row['thread']} · {run_row['status']}",
        highlight=False,
    )
    if due := _next_due(run_row):
        out.print(
            f"next step due {due:%Y-%m-%d %H:%M:%S} UTC in flow run {run_row['continuation']}",
            highlight=False,
        )
    out.print(f"genesis: {run_row['genesis']}", highlight=False)
    if pending := api.pending_embeddings(home, str(run_row["thread"]), store=store):
        out.print(_not_embedded(pending), highlight=False)
    if full:
        for row in steps.itertuples(index=False):
            out.rule(f"step {row.step} · {row.facet} · {row.status}")
            if row.output_type == "audio" and row.status == "ok":
                out.print(audio_label(row.metadata), highlight=False)
            out.print(
                row.output if row.output_type == "text" else store.blobs.url(str(row.output)),
                highlight=False,
            )
        return
    out.print(_steps_table(steps, f"{len(steps)} steps"))


@app.command()
def cancel(
    thread: Annotated[str, typer.Argument(help="A thread id or a unique prefix of one.")],
    home: HomeOption = None,
    as_json: JsonOption = False,
    wait: Annotated[
        float, typer.Option("--wait", min=0, help="Seconds to wait for the run to stop (0: none).")
    ] = 60.0,
) -> None:
    """Stop a running network run or dialogue after the step under way.

    Every recorded step is kept; running the same command that started it resumes it. A run
    that waits for a scheduled continuation is cancelled at once.
    """
    prepare_prefect()
    import time

    from sandloop import api

    answer = api.cancel_run(thread, home)
    state = answer["state"]
    deadline = time.monotonic() + wait
    while state == "CANCELLING" and time.monotonic() < deadline:
        time.sleep(0.5)
        state = api.flow_run_state(answer["flow_run_id"])["state"] or state
    answer["state"] = state
    run_row = api.open_store(home, readonly=True).find_run(answer["thread"])
    if as_json:
        out.print_json(data={**answer, "status": run_row["status"], "steps": int(run_row["steps"])})
        return
    short = answer["thread"][:12]
    if state == "CANCELLING":
        out.print(f"asked run {short} to stop; it stops after the step under way", highlight=False)
    else:
        out.print(
            f"run {short} {state.lower()} with {counted(int(run_row['steps']), 'step')} recorded; "
            "run the same command that started it to resume",
            highlight=False,
        )


@app.command()
def publish(
    thread: Annotated[str, typer.Argument(help="A thread id or a unique prefix of one.")],
    undo: Annotated[bool, typer.Option("--undo", help="Take it off the gallery.")] = False,
    home: HomeOption = None,
) -> None:
    """Put a network run on the public gallery of `sandloop api` (/gallery/THREAD).

    Runs are private until published, except those visitors start from /submit; chats,
    dialogues and recipes are never public.
    """
    from sandloop import api

    done = api.publish_run(thread, home, public=not undo)
    said = "is on the public gallery" if done["public"] else "is off the public gallery"
    out.print(f"run {done['thread'][:12]} {said}", highlight=False)


@app.command()
def models(home: HomeOption = None, as_json: JsonOption = False, wide: WideOption = False) -> None:
    """List the model catalog and routes: refs and tasks (--wide adds I/O types, descriptions
    and costs; --json, parameters too).

    Add models and routes in <home>/models.yaml (or SANDLOOP_MODELS_FILE); see the README.
    """
    from sandloop import api

    if as_json:
        out.print_json(data=api.catalog_listing(home))
        return
    known = api.model_catalog(home)
    print_records(
        [
            {
                "model": i.ref,
                "task": i.task,
                "io": f"{i.input_type} → {i.output_type}",
                "description": i.description,
                "cost": i.cost_hint,
            }
            for i in known.models.values()
        ],
        [
            Column("model", no_wrap=True, overflow="ellipsis", max_width=44),
            Column("task", no_wrap=True, overflow="ellipsis"),
            Column("io", "in → out", no_wrap=True, wide=True),
            Column("description", wide=True, max_width=60),
            Column("cost", wide=True, max_width=30),
        ],
        as_json=False,
        compact=True,
        wide=wide,
    )
    if known.routes:
        routes = Table(title="routes")
        for column in ("route", "candidates", "sovereign first", "cooldown"):
            routes.add_column(column)
        for name, r in known.routes.items():
            routes.add_row(
                f"route:{name}",
                escape(" → ".join(r.candidates)),
                str(r.sovereign_first),
                f"{r.cooldown_s:g}s",
            )
        out.print(routes)
    out.print(
        "Models outside the catalog: local:<hub-id|folder>[@task], openai:<model>[@task] "
        "(SANDLOOP_OPENAI_BASE_URL), hf:<hub-id>[@task], replicate:<owner/name[:version]>@task. "
        f"Your models file: {known.user_file}"
        + ("" if known.user_file and known.user_file.is_file() else " (none yet)"),
        markup=False,
        highlight=False,
    )
    out.print("Parameters per model: `sandloop models --json`.", markup=False)
