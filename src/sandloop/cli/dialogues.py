"""`sandloop dialogue`: run a Socratic dialogue as a flow, watching the turns as they come."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from sandloop.cli.common import (
    HomeOption,
    JsonOption,
    SessionOption,
    app,
    err,
    out,
    prepare_prefect,
    suggest_a_server_once,
)
from sandloop.cli.sessions import resolve_session
from sandloop.display import counted, status_line

dialogue_app = typer.Typer(help="Socratic dialogues between models.", no_args_is_help=True)
app.add_typer(dialogue_app, name="dialogue")


def _print_turns(messages: Any) -> None:
    for row in messages.itertuples():
        heat = row.temperature  # none (NaN) for a chat's person
        shown = f" [dim](t={heat:g})[/]" if heat is not None and heat == heat else ""
        out.print(f"[bold]{row.turn} · {row.actor}[/]{shown}", highlight=False)
        out.print(row.content, markup=False, highlight=False)
        if row.verdict:
            out.print(f"[dim]judge: {row.verdict}[/]", highlight=False)


@dialogue_app.command("run")
def dialogue_run(
    spec_path: Annotated[Path, typer.Argument(help="Dialogue spec (YAML or JSON).")],
    question: Annotated[
        str | None, typer.Option(help="Ask this instead of the spec's question.")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed; the same seed repeats.")] = None,
    home: HomeOption = None,
    session: SessionOption = None,
    as_json: JsonOption = False,
    verbose: Annotated[bool, typer.Option("--verbose", help="Show Prefect's logs.")] = False,
) -> None:
    """Run (or resume) a dialogue: actors take turns, each a task run `turn 4 · Theaetetus`."""
    temporary_server = prepare_prefect(verbose)
    from sandloop import api
    from sandloop.progress import Event, StepEvent, observing

    def on_turn(event: Event) -> None:
        if not as_json and isinstance(event, StepEvent):
            err.print(f"[bold]{event.step} · {event.model}[/]", highlight=False)
            err.print(event.output_excerpt, markup=False, highlight=False)

    settings = api.settings_for(home)
    session = resolve_session(settings.home, session)
    spec = api.load_dialogue(spec_path, question, settings.home)
    if temporary_server and not as_json:
        suggest_a_server_once()
    with observing(on_turn):
        summary = api.run_dialogue(spec, seed, settings.home, session)
    messages = api.dialogue_messages(summary.thread, settings.home)
    if as_json:
        out.print_json(
            data={
                **summary.as_dict(),
                "messages": messages.drop(columns=["created_at"]).to_dict(orient="records"),
            }
        )
    else:
        colour = "red" if summary.status == "failed" else "green"
        said = status_line(summary.status, summary.stop_reason)
        out.print(
            f"[{colour}]{said}[/] after {counted(summary.turns, 'turn')} · "
            f"thread [bold]{summary.thread}[/]",
            highlight=False,
        )
        if summary.error:
            out.print(f"[red]{summary.error}[/]", highlight=False)
    if summary.status == "failed":
        raise typer.Exit(1)


@dialogue_app.command("show")
def dialogue_show(
    thread: Annotated[str, typer.Argument(help="A dialogue's thread id or prefix.")],
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Print a dialogue's turns: actor, temperature, content and the judge's verdicts."""
    from sandloop import api

    messages = api.dialogue_messages(thread, home)
    if as_json:
        out.print_json(messages.drop(columns=["created_at"]).to_json(orient="records"))
        return
    _print_turns(messages)
