"""The MCP server through the SDK's own client: in memory, over stdio in a subprocess
(`sandloop mcp`, as an MCP client's configuration starts it), and over streamable HTTP behind
sandloop's tokens. Every tool is listed with its annotations and called on a real home."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters

from sandloop import api
from sandloop.loops.network.spec import RunSpec

# In the slow step: make test keeps its margin under 10 minutes on 2 cores.
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_api_url")]

ECHO = Path(__file__).resolve().parents[2] / "examples" / "networks" / "echo.yaml"
PANIC = {"name": "panic", "models": ["dummy:text-to-image", "dummy:image-to-text"]}
TOOLS = {  # name: (readOnlyHint, destructiveHint, idempotentHint)
    "search_outputs": (True, False, True),
    "list_runs": (True, False, True),
    "show_run": (True, False, True),
    "get_step": (True, False, True),
    "list_models": (True, False, True),
    "list_recipes": (True, False, True),
    "start_run": (False, False, True),
    "run_recipe": (False, False, True),
    "create_snapshot": (False, False, False),
    "cancel_run": (False, True, True),
}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, prefect_api_url: str) -> Path:
    home = tmp_path_factory.mktemp("mcp-home")
    spec = {"network": PANIC, "genesis": "a red balloon", "seed": 1, "stop": {"max_steps": 4}}
    api.run_network(RunSpec.model_validate(spec), home)
    return home


def data(result: Any) -> Any:
    assert not result.is_error, result.content
    if result.structured_content is not None:
        found = result.structured_content
        return found.get("result", found) if set(found) == {"result"} else found
    return json.loads(result.content[0].text)


def test_every_tool_is_listed_with_its_annotations(home: Path) -> None:
    from sandloop.mcp_server import create_server

    async def listed() -> dict[str, tuple[Any, ...]]:
        async with Client(create_server(home)) as client:
            tools = (await client.list_tools()).tools
        return {
            t.name: (
                t.annotations.read_only_hint,
                t.annotations.destructive_hint,
                t.annotations.idempotent_hint,
            )
            for t in tools
            if t.annotations is not None
        }

    assert anyio.run(listed) == TOOLS


def test_the_tools_read_and_start_on_a_real_home(home: Path) -> None:
    from sandloop.mcp_server import create_server

    thread = str(api.list_runs(home)["thread"].iloc[0])
    progress: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    async def session() -> dict[str, Any]:
        answers: dict[str, Any] = {}
        async with Client(create_server(home, [ECHO])) as client:
            call = client.call_tool
            answers["runs"] = data(await call("list_runs", {"kind": "network"}))
            answers["run"] = data(await call("show_run", {"thread": thread[:8], "steps": 2}))
            answers["step"] = data(await call("get_step", {"ref": f"{thread[:8]}:1"}))
            answers["models"] = data(await call("list_models", {}))
            answers["recipes"] = data(await call("list_recipes", {}))
            answers["search"] = data(await call("search_outputs", {"query": "a picture"}))
            start = {"network": "echo", "genesis": "hello", "seed": 2, "max_steps": 3}
            answers["started"] = data(
                await call("start_run", {**start, "wait": True}, progress_callback=on_progress)
            )
            answers["again"] = data(await call("start_run", {**start, "wait": True}))
            answers["recipe"] = data(
                await call(
                    "run_recipe",
                    {"name": "summarize", "input": "a long text", "seed": 1, "model": "dummy:text"},
                )
            )
            answers["snapshot"] = data(await call("create_snapshot", {"name": "agents"}))
            answers["twice"] = await call("create_snapshot", {"name": "agents"})
            answers["unknown"] = await call("show_run", {"thread": "ffff0000"})
            answers["path"] = await call("start_run", {"network": str(ECHO), "genesis": "x"})
            answers["images"] = await call("search_outputs", {"query": "x", "images": True})
            resource = await client.read_resource(f"sandloop://runs/{thread}")
            answers["resource"] = json.loads(resource.contents[0].text)
            image = answers["resource"]["steps"][0]["output"]
            answers["blob"] = await client.read_resource(f"sandloop://blobs/{image}")
        return answers

    answers = anyio.run(session)
    assert thread in [r["thread"] for r in answers["runs"]]
    assert answers["run"]["thread"] == thread and len(answers["run"]["steps"]) == 2
    assert answers["step"]["step"] == 1 and answers["step"]["thread"] == thread
    assert any(m["ref"].startswith("dummy:") for m in answers["models"]["models"])
    assert "summarize" in answers["recipes"]
    assert answers["search"] and all("output" in hit for hit in answers["search"])
    started = answers["started"]
    assert started["run"]["status"] == "completed" and started["run"]["steps"] == 3
    assert progress and progress[-1] <= 3
    assert answers["again"]["thread"] == started["thread"]  # idempotent: the same thread
    assert answers["again"]["run"]["steps"] == 3  # and no new steps
    assert answers["recipe"]["run"]["kind"] == "recipe" and answers["recipe"]["output"]
    assert answers["snapshot"]["name"] == "agents" and answers["snapshot"]["runs"] >= 2
    for refused, says in (
        ("twice", "exists"),
        ("unknown", "ffff0000"),
        ("path", "offered"),
        ("images", "SANDLOOP_IMAGE_EMBED_MODEL"),  # none is configured here
    ):
        assert answers[refused].is_error, refused
        assert says in answers[refused].content[0].text
    assert len(answers["resource"]["steps"]) == 4
    blob = answers["blob"].contents[0]
    assert blob.mime_type == "image/png"  # its own type, not the template's octet-stream
    import base64

    assert base64.b64decode(blob.blob).startswith(b"\x89PNG")


def test_sandloop_mcp_serves_stdio_in_a_subprocess(home: Path, prefect_api_url: str) -> None:
    command = str(Path(sys.executable).parent / "sandloop")
    environment = {**os.environ, "PREFECT_API_URL": prefect_api_url}
    params = StdioServerParameters(
        command=command, args=["mcp", "--home", str(home)], env=environment
    )

    async def session() -> tuple[set[str], Any]:
        async with Client(params) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            runs = data(await client.call_tool("list_runs", {}))
        return names, runs

    names, runs = anyio.run(session)
    assert names == set(TOOLS)
    assert {r["thread"] for r in runs} >= set(api.list_runs(home)["thread"].head(1))


def test_sandloop_mcp_over_http_needs_a_token_and_a_run_scope_to_act(
    home: Path, prefect_api_url: str
) -> None:
    import socket
    import subprocess
    import time

    import httpx
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [str(Path(sys.executable).parent / "sandloop"), "mcp", "--http", "--port"]
    environment = {**os.environ, "PREFECT_API_URL": prefect_api_url}
    server = subprocess.Popen(
        [*command, str(port), "--home", str(home)], env=environment, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}/mcp"
    reader, runner = (api.create_token(scope, "ada", home)[0] for scope in ("read", "run"))
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                refused = httpx.post(url, json={}, timeout=5)
                break
            except httpx.ConnectError:
                assert server.poll() is None and time.monotonic() < deadline
                time.sleep(0.2)
        assert refused.status_code == 401  # no token: the SDK's bearer middleware says no

        async def as_user(token: str, name: str) -> tuple[Any, Any]:
            headers = {"Authorization": f"Bearer {token}"}
            http = httpx2.AsyncClient(headers=headers, timeout=60)
            async with http, Client(streamable_http_client(url, http_client=http)) as client:
                runs = await client.call_tool("list_runs", {})
                snapshot = await client.call_tool("create_snapshot", {"name": name})
            return runs, snapshot

        runs, denied = anyio.run(as_user, reader, "by-reader")
        assert {r["thread"] for r in data(runs)} >= set(api.list_runs(home)["thread"].head(1))
        assert denied.is_error and "needs a run token" in denied.content[0].text
        _, made = anyio.run(as_user, runner, "by-runner")
        assert data(made)["runs"] >= 1
        assert bad_token_refused(url)
    finally:
        server.terminate()
        server.wait(30)


def bad_token_refused(url: str) -> bool:
    import httpx

    answer = httpx.post(url, json={}, headers={"Authorization": "Bearer sl_nope"}, timeout=5)
    return answer.status_code == 401


def test_strangers_inputs_are_bounded_as_over_http(home: Path) -> None:
    """Issue 37: search capped like GET /v1/search, a superscript step number, a model path
    outside the models folder, and a run past the server's ceilings are tool errors; so is a
    cancel of a run that has ended."""
    from sandloop.mcp_server import create_server

    finished = str(api.list_runs(home)["thread"].iloc[-1])

    async def session() -> list[Any]:
        async with Client(create_server(home, [ECHO])) as client:
            call = client.call_tool
            return [
                await call("search_outputs", {"query": "x" * 2001}),
                await call("search_outputs", {"query": "x", "k": 1000}),
                await call("search_outputs", {"query": "x", "thread": "../../etc"}),
                await call("get_step", {"ref": "7df45ae0:²"}),
                await call(
                    "run_recipe", {"name": "summarize", "input": "x", "model": "local:/etc"}
                ),
                await call("start_run", {"network": "echo", "genesis": "x", "max_steps": 10**9}),
                await call("cancel_run", {"thread": finished}),
            ]

    answers = anyio.run(session)
    said = [answer.content[0].text for answer in answers]
    assert all(answer.is_error for answer in answers), said
    assert "2,000 characters" in said[0] and "k: 1 to 100" in said[1]
    assert "32 hex digits" in said[2] and "is a number" in said[3]
    assert "models folder" in said[4] and "at most 1000 steps" in said[5]
    assert "is not running (completed); nothing to cancel" in said[6]
