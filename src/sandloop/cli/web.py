"""`sandloop api` (the HTTP API under uvicorn), `sandloop mcp` (the MCP server) and
`sandloop tokens create|list|revoke`."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from sandloop.cli.common import HomeOption, JsonOption, app, err, fail, out, prepare_prefect

tokens_app = typer.Typer(
    help="API tokens for `sandloop api`: each grants a scope (read < run < admin).",
    no_args_is_help=True,
)
app.add_typer(tokens_app, name="tokens")


def check_can_listen(host: str, port: int) -> None:
    """Said as one line here: the servers themselves report a bad address with a traceback."""
    import socket

    try:
        with socket.create_server((host, port)):
            pass
    except OSError as exc:
        fail(f"cannot listen on {host}:{port} ({exc.strerror or exc}); try another --port")


@app.command("api")
def serve_api(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port.")] = 8765,
    network: Annotated[
        list[Path] | None,
        typer.Option(
            "--network",
            help="A network file that may be started by name, and by visitors at "
            "/submit/NAME (repeatable).",
        ),
    ] = None,
    gallery: Annotated[
        bool, typer.Option(help="Serve the public, read-only gallery pages (/gallery/THREAD).")
    ] = True,
    visitor_steps: Annotated[
        int, typer.Option(min=1, max=10_000, help="Steps of a run a visitor starts.")
    ] = 24,
    visitor_pace: Annotated[
        str, typer.Option(help="Pace of a visitor's run: none | constant:S | panic | …")
    ] = "none",
    moderate: Annotated[
        str | None,
        typer.Option(
            "--moderate",
            metavar="RECIPE",
            help="A recipe that allows or declines each visitor's prompt, answering "
            "{allowed, reason} (built in: moderate-prompt). No verdict declines.",
        ),
    ] = None,
    cors: Annotated[
        list[str] | None,
        typer.Option("--cors", help="An origin browsers may call the API from (repeatable)."),
    ] = None,
    exports: Annotated[
        Path | None,
        typer.Option(help="Where exports started over HTTP go [default: HOME-exports]."),
    ] = None,
    access_log: Annotated[
        str,
        typer.Option(
            "--access-log",
            metavar="FILE|-|off",
            help="Where a line per request goes (client, request, status, size, time, token "
            "id; never a token): - for stderr, a file to append to, or off.",
        ),
    ] = "-",
    home: HomeOption = None,
    verbose: Annotated[bool, typer.Option("--verbose", help="Show Prefect's logs.")] = False,
) -> None:
    """Serve the HTTP API (OpenAPI at /openapi.json, docs at /docs) and the gallery until
    Ctrl-C. Runs it started stop with it, and resume when started again."""
    prepare_prefect(verbose)
    access_stream = _access_stream(access_log)
    import uvicorn

    from sandloop import api
    from sandloop.cli.runs import parse_pace
    from sandloop.web.app import create_app
    from sandloop.web.listen import beyond_loopback, trusted, uvicorn_config

    proxies = api.settings_for(home).trusted_proxies
    try:
        trusted(proxies)
    except ValueError as exc:
        fail(f"SANDLOOP_TRUSTED_PROXIES: {exc}")

    visitor = {
        "stop": {"max_steps": visitor_steps},
        "pace": parse_pace(visitor_pace, "--visitor-pace"),
    }
    app_ = create_app(
        home,
        networks=network or [],
        gallery_on=gallery,
        cors_origins=cors or [],
        visitor_run=visitor,
        exports=exports,
        moderation=moderate,
        public_url=api.settings_for(home).public_url or f"http://{host}:{port}",
        access_log=access_stream,
    )
    check_can_listen(host, port)  # before uvicorn starts, which would log a traceback
    base = f"http://{host}:{port}"
    err.print(f"sandloop API on {base}/v1 (docs: /docs); Ctrl-C stops it")
    if beyond_loopback(host):
        err.print(
            f"warning: listening on {host}: other machines can reach this API and its gallery; "
            "put it behind TLS, and name your proxy in SANDLOOP_TRUSTED_PROXIES"
        )
    for name in app_.state.served.networks:
        err.print(f"  visitors start {name} at {base}/submit/{name}")
    uvicorn.Server(uvicorn_config(app_, host, port, proxies)).run()


def _access_stream(where: str) -> Any:
    """Where `--access-log` sends the lines: stderr, a file opened for the server's life, or
    nowhere (None)."""
    import sys

    if where == "off":
        return None
    if where == "-":
        return sys.stderr
    try:
        return open(where, "a", buffering=1, encoding="utf-8")
    except OSError as exc:
        fail(f"--access-log {where}: {exc.strerror or exc}")


@app.command("mcp")
def serve_mcp(
    http: Annotated[
        bool,
        typer.Option(
            "--http", help="Serve streamable HTTP at /mcp instead of stdio; needs a token."
        ),
    ] = False,
    host: Annotated[str, typer.Option("--host", help="Address for --http.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port for --http.")] = 8766,
    network: Annotated[
        list[Path] | None,
        typer.Option("--network", help="A network file start_run may name (repeatable)."),
    ] = None,
    home: HomeOption = None,
    verbose: Annotated[bool, typer.Option("--verbose", help="Show Prefect's logs.")] = False,
) -> None:
    """Serve the record and the loops to agents over MCP (stdio by default): search, runs,
    steps, models, recipes, snapshots; start runs and recipes."""
    prepare_prefect(verbose)
    from sandloop.mcp_server import create_server

    if not http:
        create_server(home, network or []).run("stdio")
        return
    check_can_listen(host, port)  # before its auth settings refuse a bad host with a traceback
    url = f"http://{host}:{port}"
    server = create_server(home, network or [], url)
    err.print(
        f"sandloop MCP on {url}/mcp (Authorization: Bearer, a token from `sandloop tokens "
        "create`); Ctrl-C stops it"
    )
    server.run("streamable-http", host=host, port=port)


@tokens_app.command("create")
def create_token(
    scope: Annotated[str, typer.Option("--scope", help="read, run or admin.", show_default=False)],
    user: Annotated[str, typer.Option("--user", help="Who the token is for.")] = "default",
    expires: Annotated[
        str | None,
        typer.Option(
            "--expires", help="How long it lasts: 90m, 12h, 30d (default: until revoked)."
        ),
    ] = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a token. It is shown once: only its hash is stored."""
    from sandloop import api

    token, grant = api.create_token(scope, user, home, expires)
    if as_json:
        data = {"token": token, "id": grant.id, "scope": grant.scope, "user": user}
        out.print_json(data={**data, "expires": expires})
        return
    out.print(token, highlight=False)
    lasts = f", expires in {expires}" if expires else ""
    err.print(f"token {grant.id} ({grant.scope}, for {user}{lasts}): shown once, keep it safe")


@tokens_app.command("list")
def list_tokens(home: HomeOption = None, as_json: JsonOption = False) -> None:
    """Tokens by id, scope and user (never the tokens themselves)."""
    from sandloop import api

    frame = api.list_tokens(home)
    rows = [
        {
            "id": r["id"],
            "scope": r["scope"],
            "user": r["user"],
            "created_at": str(r["created_at"]),
            "revoked": r["revoked_at"] is not None and str(r["revoked_at"]) not in ("NaT", "None"),
            "expires_at": _when(r.get("expires_at")),
        }
        for r in frame.to_dict("records")
    ]
    if as_json:
        out.print_json(data=rows)
        return
    now = datetime.now(UTC).isoformat()
    for r in rows:
        state = "revoked" if r["revoked"] else "active"
        if not r["revoked"] and r["expires_at"]:
            until = r["expires_at"][:16].replace("T", " ")
            state = "expired" if r["expires_at"] <= now else f"until {until} UTC"
        made = r["created_at"][:16]
        out.print(f"{r['id']}  {r['scope']:<5}  {r['user']}  {made}  {state}", highlight=False)
    if not rows:
        err.print("no tokens yet: `sandloop tokens create --scope read`")


def _when(value: Any) -> str | None:
    """A timestamp as ISO text in UTC, or None for one never set."""
    import pandas as pd

    if value is None or str(value) in ("NaT", "None", "nan"):
        return None
    return str(pd.Timestamp(value).tz_convert("UTC").isoformat())


@tokens_app.command("revoke")
def revoke_token(
    token_id: Annotated[str, typer.Argument(help="The id `tokens list` shows.")],
    home: HomeOption = None,
) -> None:
    """Revoke a token: the API refuses it within seconds."""
    from sandloop import api

    done = api.revoke_token(token_id, home)
    err.print(f"revoked token {done['id']} ({done['scope']}, for {done['user']})")
