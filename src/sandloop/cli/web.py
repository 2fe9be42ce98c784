"""`sandloop api` (the HTTP API under uvicorn) and `sandloop tokens create|list|revoke`."""

from __future__ import annotations

from typing import Annotated

import typer

from sandloop.cli.common import HomeOption, JsonOption, app, err, fail, out

tokens_app = typer.Typer(
    help="API tokens for `sandloop api`: each grants a scope (read < run < admin).",
    no_args_is_help=True,
)
app.add_typer(tokens_app, name="tokens")


@app.command("api")
def serve_api(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port.")] = 8765,
    home: HomeOption = None,
) -> None:
    """Serve the HTTP API (OpenAPI at /openapi.json, docs at /docs) until Ctrl-C."""
    import socket

    import uvicorn

    from sandloop.web.app import create_app

    try:  # said before uvicorn starts, which would log a traceback
        with socket.create_server((host, port)):
            pass
    except OSError as exc:
        fail(f"cannot listen on {host}:{port} ({exc.strerror or exc}); try another --port")
    err.print(f"sandloop API on http://{host}:{port}/v1 (docs: /docs); Ctrl-C stops it")
    uvicorn.run(create_app(home), host=host, port=port, log_level="warning")


@tokens_app.command("create")
def create_token(
    scope: Annotated[str, typer.Option("--scope", help="read, run or admin.", show_default=False)],
    user: Annotated[str, typer.Option("--user", help="Who the token is for.")] = "default",
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a token. It is shown once: only its hash is stored."""
    from sandloop import api

    token, grant = api.create_token(scope, user, home)
    if as_json:
        out.print_json(data={"token": token, "id": grant.id, "scope": grant.scope, "user": user})
        return
    out.print(token, highlight=False)
    err.print(f"token {grant.id} ({grant.scope}, for {user}): shown once, keep it safe")


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
        }
        for r in frame.to_dict("records")
    ]
    if as_json:
        out.print_json(data=rows)
        return
    for r in rows:
        state = "revoked" if r["revoked"] else "active"
        out.print(f"{r['id']}  {r['scope']:<5}  {r['user']}  {r['created_at']}  {state}")
    if not rows:
        err.print("no tokens yet: `sandloop tokens create --scope read`")


@tokens_app.command("revoke")
def revoke_token(
    token_id: Annotated[str, typer.Argument(help="The id `tokens list` shows.")],
    home: HomeOption = None,
) -> None:
    """Revoke a token: the API refuses it within seconds."""
    from sandloop import api

    done = api.revoke_token(token_id, home)
    err.print(f"revoked token {done['id']} ({done['scope']}, for {done['user']})")
