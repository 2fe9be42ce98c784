"""`sandloop session`: group runs, dialogues and recipes under one task, with phase labels."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sandloop.cli.common import (
    HomeOption,
    JsonOption,
    app,
    err,
    fail,
    out,
    parse_pairs,
    prepare_prefect,
)
from sandloop.cli.output import Column, print_records, short_id, text, when
from sandloop.display import counted

session_app = typer.Typer(
    help="Sessions: work on one task, grouped, with phase labels.", no_args_is_help=True
)
app.add_typer(session_app, name="session")


def resolve_session(home: Path | str, prefix: str | None) -> str | None:
    """The full id of the session a --session prefix names (it must exist and be open)."""
    if prefix is None:
        return None
    from sandloop import api

    return api.open_session(prefix, home)


@session_app.command("start")
def session_start(
    title: Annotated[str, typer.Argument(help="What the session works on.")],
    tag: Annotated[list[str], typer.Option("--tag", help="A tag; repeatable.")] = [],  # noqa: B006
    meta: Annotated[list[str], typer.Option("--meta", help="key=value metadata; repeatable.")] = [],  # noqa: B006
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Start a session; pass its id to run/dialogue/recipe with --session (or SANDLOOP_SESSION)."""
    from sandloop import api

    row = api.start_session(title, home, tags=tag, metadata=parse_pairs(meta, "--meta"))
    if as_json:
        out.print_json(data={"id": row["id"], "title": title, "tags": sorted(set(tag))})
        return
    # the id alone on stdout, so that SID=$(sandloop session start …) is the id
    out.print(row["id"], highlight=False)
    err.print(f"session [bold]{row['id']}[/] started: {title}", highlight=False)
    err.print(f"export SANDLOOP_SESSION={row['id']}", highlight=False)


@session_app.command("end")
def session_end(
    session_id: Annotated[str, typer.Argument(help="A session id or a unique prefix.")],
    home: HomeOption = None,
) -> None:
    """End a session: no more runs can join it."""
    from sandloop import api

    row = api.end_session(session_id, home)
    out.print(f"session {row['id']} ended", highlight=False)


@session_app.command("list")
def session_list(home: HomeOption = None, as_json: JsonOption = False) -> None:
    """Sessions, newest first, with how many runs each holds."""
    from sandloop import api

    frame = api.list_sessions(home)
    print_records(
        frame,
        [
            Column("id"),
            Column("title"),
            Column("status"),
            Column("runs"),
            Column("tags"),
            Column("started_at", "started", show=when),
        ],
        as_json=as_json,
        empty="no sessions yet; start one with `sandloop session start TITLE`",
    )


@session_app.command("show")
def session_show(
    session_id: Annotated[str, typer.Argument(help="A session id or a unique prefix.")],
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """A session's runs, dialogues and recipes with their phases."""
    from sandloop import api

    row, runs = api.session_runs(session_id, home)
    columns = ["thread", "kind", "name", "status", "phase", "genesis"]
    if not as_json:
        out.print(f"[bold]{row['title']}[/] ({row['id']}, {row['status']})", highlight=False)
    print_records(
        runs,
        [
            Column(c, show=short_id if c == "thread" else text, no_wrap=c != "genesis")
            for c in columns
        ],
        as_json=as_json,
        json_data={
            "id": row["id"],
            "title": row["title"],
            "status": row["status"],
            "runs": runs.reindex(columns=columns).to_dict(orient="records"),
        },
    )


@session_app.command("label")
def session_label(
    thread: Annotated[str, typer.Argument(help="A run's thread id or prefix.")],
    phase: Annotated[str, typer.Argument(help="prepare, install, start, use, debug or export.")],
    home: HomeOption = None,
) -> None:
    """Set a run's phase by hand."""
    from sandloop import api

    run = api.label_run(thread, phase, home)
    out.print(f"{run['thread'][:10]} → {phase}", highlight=False)


@session_app.command("classify")
def session_classify(
    session_id: Annotated[str, typer.Argument(help="A session id or a unique prefix.")],
    model: Annotated[
        str | None, typer.Option(help="Model for the classify-phase recipe (default: its own).")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Relabel runs that have a phase.")] = False,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Label each run of a session with its phase, using the classify-phase recipe. Exits 1
    when the recipe left a run unlabelled, and says so when there was nothing to label."""
    prepare_prefect()
    from sandloop import api

    labelled = api.classify_session(session_id, home, model=model, overwrite=overwrite)
    if as_json:
        out.print_json(data=labelled)
    else:
        for item in labelled:
            shown = item["phase"] or f"[red]unlabelled[/]: {item['error']}"
            out.print(f"{str(item['thread'])[:10]} → {shown}", highlight=False)
    if not labelled:
        err.print(
            "nothing to label: the session's runs have phases (--overwrite relabels them), "
            "and recipes are not labelled",
            highlight=False,
        )
    unlabelled = sum(1 for item in labelled if item["phase"] is None)
    if unlabelled:
        fail(f"{counted(unlabelled, 'run')} left unlabelled (why is said above); try --model", 1)
