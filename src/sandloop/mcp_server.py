"""`sandloop mcp`: the record and the loops as MCP tools and resources, for agents.

Built with the SDK's `MCPServer`. Every tool is a call into `sandloop.api` through the same
`Served` state as the HTTP API, so the rules are the HTTP API's: a network is named by the
server (`--network FILE`) or given whole, never as a path, and runs go on in the background.
Each tool says what it does to the record in its annotations; `start_run` is idempotent
because a run's keys are its inputs. No tool takes or returns an API key, and every error an
agent sees is scrubbed.

Over HTTP every request needs a sandloop token (``Authorization: Bearer sl_…``, from `sandloop
tokens create`), checked by the SDK's bearer middleware against the home's tokens: a read token
reads, and the tools that start or create need a run token. Over stdio the client started the
server itself, and no token is asked.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import anyio
import pandas as pd
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations

from sandloop import __version__, api
from sandloop.access_tokens import SCOPES
from sandloop.chats import is_chat
from sandloop.display import whole_numbers
from sandloop.errors import SandloopError
from sandloop.loops.spec_files import SpecError
from sandloop.records import with_metadata_objects
from sandloop.scrub import scrub
from sandloop.storage.blobs import blob_media_type
from sandloop.storage.store import StoreError
from sandloop.storage.wal import ThreadLocked
from sandloop.summaries import Started
from sandloop.web.acts import network_spec
from sandloop.web.auth import Grants
from sandloop.web.model_refs import check_served_refs
from sandloop.web.served import SEARCH_CATCH_UP, Conflict, Served

log = logging.getLogger("sandloop.mcp")

READ = ToolAnnotations(readOnlyHint=True, destructiveHint=False, idempotentHint=True)
START = ToolAnnotations(readOnlyHint=False, destructiveHint=False, idempotentHint=True)
CREATE = ToolAnnotations(readOnlyHint=False, destructiveHint=False, idempotentHint=False)
STOP = ToolAnnotations(readOnlyHint=False, destructiveHint=True, idempotentHint=True)
WAIT_POLL_S = 0.25
T = TypeVar("T")


class TokenCheck:
    """The SDK's token verifier over the home's sandloop tokens: a token carries its scope and
    every scope below it, so the middleware's ``read`` requirement admits run and admin."""

    def __init__(self, home: Path | str | None) -> None:
        self.grants = Grants(lambda token: api.check_token(token, home))

    async def verify_token(self, token: str) -> AccessToken | None:
        grant = await anyio.to_thread.run_sync(self.grants, token)
        if grant is None:
            return None
        scopes = [scope for scope in SCOPES if grant.allows(scope)]
        # The token's short id, not the token: nothing downstream needs the secret.
        return AccessToken(token=grant.id, client_id=grant.user, scopes=scopes)


def caller() -> str | None:
    """Whose chats this request reaches: over HTTP, the token's user's own (an admin token,
    everyone's: None); over stdio, everyone's (the person who started the server)."""
    token = get_access_token()
    if token is None or "admin" in token.scopes:
        return None
    return token.client_id


def needs_run(tool: str) -> None:
    """Refuse a tool that starts or creates to a read token (over stdio there is none)."""
    token = get_access_token()
    if token is not None and "run" not in token.scopes:
        raise ToolError(f"{tool} needs a run token; this one grants read")


BLOBS = "sandloop://blobs/"


class _Server(MCPServer):
    """The SDK's server, but a blob is read with its own media type (an image/png, an
    audio/wav): a resource template declares one type for every URI it matches."""

    async def read_resource(self, uri: Any, context: Any = None) -> Any:
        contents = await super().read_resource(uri, context)
        if not str(uri).startswith(BLOBS) or not isinstance(contents, list):
            return contents
        return [
            replace(c, mime_type=blob_media_type(c.content)) if isinstance(c.content, bytes) else c
            for c in contents
        ]


def create_server(
    home: Path | str | None = None,
    networks: Sequence[Path | str] = (),
    http_url: str | None = None,
) -> MCPServer:
    """The server; ``http_url`` (its base, served over HTTP) turns the token check on."""
    served = Served(home, {api.load_network(p, home).name: Path(p) for p in networks})
    auth: dict[str, Any] = {}
    if http_url is not None:
        auth = {
            "token_verifier": TokenCheck(home),
            "auth": AuthSettings(
                issuer_url=http_url,
                resource_server_url=f"{http_url}/mcp",
                required_scopes=["read"],
            ),
        }
    server = _Server(
        "sandloop",
        version=__version__,
        instructions="Search and read sandloop's record of model loops; start network runs "
        "and recipes (they run in the background; follow them with show_run).",
        **auth,
    )

    @server.tool(annotations=READ)
    def search_outputs(
        query: str, k: int = 10, thread: str | None = None, images: bool = False
    ) -> list[dict[str, Any]]:
        """Recorded outputs nearest in meaning to ``query`` (optionally within one thread; with
        ``images``, the pictures, through the image embedding model)."""
        user = caller()

        def search() -> list[dict[str, Any]]:
            if not 1 <= len(query) <= 2000 or not 1 <= k <= 100:  # as GET /v1/search
                raise SpecError("query: 1 to 2,000 characters; k: 1 to 100")
            if thread is not None and not re.fullmatch("[0-9a-f]{32}", thread):
                raise SpecError("thread: a whole thread id (32 hex digits)")
            if images:
                if served.image_embedder is None:
                    served.image_embedder = api.load_embedder(served.home, images=True)
                embedder = served.image_embedder
            else:
                if served.embedder is None:
                    served.embedder = api.load_embedder(served.home)
                embedder = served.embedder
            found = api.search(
                query,
                served.home,
                k=k,
                embedder=embedder,
                thread=thread,
                catch_up=SEARCH_CATCH_UP,
            )
            if (hidden := served.hidden_threads(user)) and not found.empty:  # not another's chats
                found = found[~found["thread"].isin(hidden)]
            return rows(found, ["score", "key", "thread", "step", "model", "output", "output_type"])

        return answering(search)

    @server.tool(annotations=READ)
    def list_runs(
        kind: str | None = None, status: str | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        """Runs, newest first: network runs, dialogues and recipes."""

        def listing() -> list[dict[str, Any]]:
            frame = api.newest_runs(served.home, store=served.store(), kind=kind, status=status)
            if (user := caller()) is not None and not frame.empty:  # not another's chats
                foreign = [is_chat(r) and r.get("owner") != user for r in frame.to_dict("records")]
                frame = frame[[not f for f in foreign]]
            return rows(frame.head(max(1, min(limit, 1000))), RUN_FIELDS)

        return answering(listing)

    @server.tool(annotations=READ)
    def show_run(thread: str, steps: int = 20) -> dict[str, Any]:
        """One run (by thread or unique prefix) and its last ``steps`` steps."""
        user = caller()
        return answering(lambda: run_with_steps(served, thread, steps, user))

    @server.tool(annotations=READ)
    def get_step(ref: str) -> dict[str, Any]:
        """One recorded step, by its key or THREAD:STEP."""
        user = caller()

        def step() -> dict[str, Any]:
            found = api.find_step(served.store(), ref)
            served.readable_run(str(found["thread"]), user)  # another's chat: no such step
            return plain(found, STEP_FIELDS)

        return answering(step)

    @server.tool(annotations=READ)
    def list_models() -> dict[str, Any]:
        """The model catalog and routes this home knows."""
        return answering(lambda: api.catalog_listing(served.home))

    @server.tool(annotations=READ)
    def list_recipes() -> list[str]:
        """Recipe names: the built-in ones and the home's own."""
        return answering(lambda: api.recipe_names(served.home))

    @server.tool(annotations=START)
    async def start_run(
        network: str | dict[str, Any],
        genesis: str,
        ctx: Context,
        seed: int | None = None,
        max_steps: int = 10,
        wait: bool = False,
        genesis_blob: str | None = None,
    ) -> dict[str, Any]:
        """Start (or resume) a network run: ``network`` is one this server offers by name, or
        the network itself ({name, models}). The same network, genesis and seed are the same
        thread, so calling it again changes nothing. With ``wait``, returns when the run ends,
        reporting each step as progress. A network that starts from an image or a sound takes
        ``genesis_blob``, a stored blob's hash (a step's output, or an upload over HTTP), and
        ignores ``genesis``."""
        needs_run("start_run")

        def begin() -> Started:
            stop = {"max_steps": max_steps}
            spec = network_spec(served, network, genesis, seed, stop, None, genesis_blob)
            thread = api.thread_of(spec)
            return served.start(
                thread, lambda: api.start_network(spec, served.launcher, served.home)
            )

        started = await anyio.to_thread.run_sync(lambda: answering(begin))
        if wait:
            await following(served, started, ctx, float(max_steps))
        return await anyio.to_thread.run_sync(lambda: outcome(served, started))

    @server.tool(annotations=START)
    async def run_recipe(
        name: str,
        input: str,
        ctx: Context,
        context: dict[str, Any] | None = None,
        seed: int | None = None,
        model: str | None = None,
    ) -> dict[str, Any]:
        """Run a recipe on an input and return its result; the same inputs, version and seed
        return the recorded result without a model call."""
        needs_run("run_recipe")

        def begin() -> Started:
            if name not in api.recipe_names(served.home):
                raise StoreError(f"no recipe {name}; list_recipes lists them")
            check_served_refs([model or ""], served.models_root(), "model")
            spec = api.load_recipe(name, served.home, model)
            return served.start(
                None,
                lambda: api.start_recipe(
                    spec, input, served.launcher, context=context, seed=seed, home=served.home
                ),
            )

        started = await anyio.to_thread.run_sync(lambda: answering(begin))
        await following(served, started, ctx, None)
        return await anyio.to_thread.run_sync(lambda: outcome(served, started))

    @server.tool(annotations=STOP)
    def cancel_run(thread: str) -> dict[str, Any]:
        """Stop a network run or a dialogue after the step under way (one that waits to start
        never starts). Every recorded step is kept; start_run with the same arguments resumes
        it."""
        needs_run("cancel_run")
        user = caller()

        def cancel() -> dict[str, Any]:
            served.readable_run(thread, user)  # someone else's chat: no such run
            return served.cancel(thread)

        return answering(cancel)

    @server.tool(annotations=CREATE)
    def create_snapshot(
        name: str,
        kind: list[str] | None = None,
        status: list[str] | None = None,
        thread: str | None = None,
        min_score: float | None = None,
    ) -> dict[str, Any]:
        """Pin a selection of runs under a new name, for export (a name is used once)."""
        needs_run("create_snapshot")
        selection: dict[str, Any] = {"thread": thread, "min_score": min_score}
        if kind is not None:
            selection["kind"] = kind
        if status is not None:
            selection["status"] = status

        def create() -> dict[str, Any]:
            row = api.create_snapshot(name, served.home, **selection)
            return {"name": row["name"], "runs": int(row["threads"]), "selection": selection}

        return answering(create)

    @server.resource("sandloop://runs/{thread}", mime_type="application/json")
    def run_resource(thread: str) -> str:
        """A run and all its steps, as JSON."""
        user = caller()
        return json.dumps(
            answering(lambda: run_with_steps(served, thread, None, user)), default=str
        )

    @server.resource(BLOBS + "{blob_hash}", mime_type="application/octet-stream")
    def blob_resource(blob_hash: str) -> bytes:
        """A content-addressed blob: an image's or a sound's bytes, read with its own media
        type (image/png, audio/wav…)."""

        def read() -> bytes:
            found = served.store().blobs.get_many([blob_hash])[0]
            if found is None:
                raise StoreError(f"no blob {blob_hash}")
            return found

        return answering(read)

    return server


RUN_FIELDS = ["thread", "kind", "name", "status", "steps", "genesis", "seed", "stop_reason"]
RUN_FIELDS += ["error", "created_at", "flow_run_id"]
STEP_FIELDS = ["key", "thread", "step", "facet", "model", "input", "input_type", "output"]
STEP_FIELDS += ["output_type", "status", "error", "latency_ms", "metadata"]


def answering(work: Callable[[], T]) -> T:
    """``work``'s answer; its expected failures as a scrubbed one-line tool error, and any
    other as a bare one (its text goes to the log, scrubbed)."""
    try:
        return work()
    except (SandloopError, ThreadLocked, Conflict) as exc:
        raise ToolError(scrub(str(exc))) from None
    except ToolError:
        raise
    except Exception as exc:
        log.error("tool failed: %s: %s", type(exc).__name__, scrub(str(exc)))
        raise ToolError("internal error; see the server's log") from None


def run_with_steps(
    served: Served, thread: str, last: int | None, user: str | None = None
) -> dict[str, Any]:
    run = served.readable_run(thread, user)
    out = plain(run, RUN_FIELDS)
    if run.get("status") == "starting":
        return {**out, "steps": []}
    steps = api.run_steps(str(run["thread"]), served.home, store=served.store())
    if last is not None:
        steps = steps.tail(last)
    return {**out, "steps": rows(steps, STEP_FIELDS)}


async def following(served: Served, started: Started, ctx: Context, total: float | None) -> None:
    """Wait for a background run, reporting its recorded steps as progress."""
    reported = -1
    while not started.done.done():
        run = await anyio.to_thread.run_sync(served.store().get_run, started.thread)
        steps = int(run["steps"] or 0) if run else 0
        if steps != reported:
            reported = steps
            await ctx.report_progress(steps, total, f"{steps} steps recorded")
        await anyio.sleep(WAIT_POLL_S)


def outcome(served: Served, started: Started) -> dict[str, Any]:
    """What a start tool answers: where to follow the run, and its state if it has ended."""
    answer = {**started.as_dict(), "resource": f"sandloop://runs/{started.thread}"}
    if started.done.done():
        failure = started.done.exception()
        if failure is not None:
            raise ToolError(scrub(str(failure)))
        run = served.store().get_run(started.thread)
        if run is not None:
            answer["run"] = plain(run, RUN_FIELDS)
            if run.get("kind") == "recipe":
                final = api.run_steps(started.thread, served.home, store=served.store())
                answer["output"] = str(final["output"].iloc[-1]) if not final.empty else None
    return answer


def rows(frame: pd.DataFrame, fields: list[str]) -> list[dict[str, Any]]:
    if frame.empty:
        return []
    chosen = with_metadata_objects(whole_numbers(frame[[f for f in fields if f in frame.columns]]))
    found: list[dict[str, Any]] = json.loads(
        str(chosen.to_json(orient="records", date_format="iso"))
    )
    return found


def plain(row: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    return rows(pd.DataFrame([{f: row.get(f) for f in fields}]), fields)[0]
