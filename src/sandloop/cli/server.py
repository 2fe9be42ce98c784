"""`sandloop server start|stop|status`: one Prefect server in the background for every command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sandloop.cli.common import JsonOption, app, err, fail, out

server_app = typer.Typer(
    help="A Prefect server in the background: every command then uses it (no temporary server "
    "per command) and its runs stay in the UI.",
    no_args_is_help=True,
)
app.add_typer(server_app, name="server")

StateOption = Annotated[
    Path | None,
    typer.Option(
        "--state",
        envvar="SANDLOOP_SERVER_DIR",
        help="Folder for the server's PID, log and SQLite database (default ~/.sandloop/server).",
        show_default=False,
    ),
]


def _state_dir(state: Path | None) -> Path:
    from sandloop.config import Settings

    return (state or Settings().server_dir).expanduser()


@server_app.command("start")
def start(
    database: Annotated[
        str | None,
        typer.Option(
            "--database",
            envvar="PREFECT_API_DATABASE_CONNECTION_URL",
            help="postgresql+asyncpg://USER:PASSWORD@HOST:PORT/DB; default: SQLite in --state.",
            show_default=False,
        ),
    ] = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port.")] = 4200,
    timeout: Annotated[
        float, typer.Option("--timeout", min=1, help="Seconds to wait for it to answer.")
    ] = 120,
    state: StateOption = None,
) -> None:
    """Start a Prefect server in the background (or say where the running one is)."""
    from rich.status import Status

    from sandloop import server

    folder = _state_dir(state)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        fail(f"cannot make the server's folder {str(folder)!r}: {exc.strerror}")
    with Status("starting the Prefect server", console=err) as status:

        def tick(elapsed: float) -> None:
            status.update(f"starting the Prefect server ({elapsed:.0f} s)")

        found, started = server.start(
            folder, host=host, port=port, database=database, timeout_s=timeout, tick=tick
        )
    verb = "started" if started else "already running"
    out.print(
        f"Prefect server {verb} at {found.ui_url} (pid {found.pid}, {found.database}); "
        "sandloop commands use it until `sandloop server stop`",
        highlight=False,
        soft_wrap=True,
    )


@server_app.command("stop")
def stop(state: StateOption = None) -> None:
    """Stop the background Prefect server."""
    from sandloop import server

    stopped = server.stop(_state_dir(state))
    if stopped is None:
        out.print("no Prefect server was running")
    else:
        out.print(f"stopped the Prefect server at {stopped.ui_url} (pid {stopped.pid})")


@server_app.command("status")
def status(state: StateOption = None, as_json: JsonOption = False) -> None:
    """Whether the background Prefect server is up, where, and on which database. Exits 1 when
    it is not running."""
    from dataclasses import asdict

    from sandloop import server

    found = server.running(_state_dir(state))
    if as_json:
        out.print_json(data={"running": found is not None, **(asdict(found) if found else {})})
    elif found is None:
        out.print("no Prefect server is running (start one with `sandloop server start`)")
    else:
        out.print(
            f"running at {found.ui_url} (pid {found.pid}, {found.database}, since "
            f"{found.started_at}; log {found.log})",
            highlight=False,
            soft_wrap=True,
        )
    if found is None:
        raise typer.Exit(1)
