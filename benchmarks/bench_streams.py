"""Open event streams against an authenticated read: sandloop's app against a bare FastAPI app
with the same two routes (a JSON read, and an SSE stream that only waits), in one run.

Each server runs in its own process under uvicorn (as `sandloop api` serves it), so its CPU
time is its own. The client holds N public gallery streams on one thread (the probe of issue
37: each stream used to poll the store every 0.2 s), then times `GET /v1/recipes` with a
token, one request at a time, and reads the server's CPU over the holding time.

    python benchmarks/bench_streams.py [--streams 500] [--reads 100] [--hold 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1]))

import _common  # noqa: F401 - quiet Prefect settings
import bench_export

STEPS = 50  # in the watched run: each stream catches up on them before it is counted open
BARE = "bare FastAPI"
BARE_APP = """
import asyncio
from fastapi import FastAPI
from fastapi.sse import EventSourceResponse, ServerSentEvent

app = FastAPI()

@app.get("/v1/recipes")
def recipes() -> list[str]:
    return ["summarize", "moderate-prompt"]

@app.get("/gallery/{thread}/events", response_class=EventSourceResponse)
async def events(thread: str):
    yield ServerSentEvent(event="run", raw_data="{}")
    while True:
        await asyncio.sleep(3600)
"""

SANDLOOP_APP = """
import os
from sandloop.web.app import create_app
app = create_app(os.environ["SANDLOOP_HOME"])
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def serve(source: str, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    module = Path(tempfile.mkdtemp(prefix="sandloop-bench-streams-")) / "served_app.py"
    module.write_text(source)
    port = free_port()
    command = [sys.executable, "-c", SERVER.format(folder=str(module.parent), port=port)]
    process = subprocess.Popen(command, env={**os.environ, **env})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process, url
        except OSError:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)


SERVER = """
import sys
sys.path.insert(0, {folder!r})
import uvicorn
from sandloop.web.listen import uvicorn_config
from served_app import app
uvicorn.Server(uvicorn_config(app, "127.0.0.1", {port})).run()
"""


async def measure(
    url: str,
    pid: int,
    path: str,
    headers: dict[str, str],
    streams: int,
    reads: int,
    hold: float,
    bare: bool,
) -> dict[str, float]:
    import httpx

    limits = httpx.Limits(max_connections=streams + 10, max_keepalive_connections=streams + 10)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as http:

        async def read_times() -> list[float]:
            times = []
            for _ in range(reads):
                started = time.perf_counter()
                answer = await http.get("/v1/recipes", headers=headers)
                times.append(time.perf_counter() - started)
                assert answer.status_code == 200, answer.text
            return times

        idle = await read_times()
        opened = asyncio.Event()
        count = 0
        stop = asyncio.Event()

        async def hold_one() -> None:
            nonlocal count
            async with http.stream("GET", path) as answer:
                assert answer.status_code == 200, await answer.aread()
                lines = answer.aiter_lines()
                async for line in lines:  # live, and caught up: the run's last step is in
                    if line in (f"id: {STEPS - 1}", "event: run") and (
                        bare or line != "event: run"
                    ):
                        break
                count += 1
                if count == streams:
                    opened.set()
                async for _ in lines:
                    if stop.is_set():
                        break
                await stop.wait()

        holders = [asyncio.ensure_future(hold_one()) for _ in range(streams)]
        await asyncio.wait_for(opened.wait(), 300)
        cpu_before, wall_before = cpu_seconds(pid), time.perf_counter()
        await asyncio.sleep(hold)
        cpu = (cpu_seconds(pid) - cpu_before) / (time.perf_counter() - wall_before)
        loaded = await read_times()
        stop.set()
        for holder in holders:
            holder.cancel()
        await asyncio.gather(*holders, return_exceptions=True)
    return {
        "idle_ms": statistics.median(idle) * 1000,
        "loaded_ms": statistics.median(loaded) * 1000,
        "loaded_p95_ms": sorted(loaded)[int(len(loaded) * 0.95)] * 1000,
        "cpu_cores": cpu,
    }


def main() -> None:
    from sandloop import api

    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, default=500)
    parser.add_argument("--reads", type=int, default=100)
    parser.add_argument("--hold", type=float, default=10.0)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="sandloop-bench-streams-")) / "home"
    bench_export.build_store(home, STEPS)
    token, _ = api.create_token("read", "bench", home)
    headers = {"Authorization": f"Bearer {token}"}
    path = f"/gallery/{bench_export.THREAD}/events"
    env = {
        "SANDLOOP_HOME": str(home),
        "SANDLOOP_MAX_STREAMS_PER_CLIENT": str(args.streams + 10),  # one client holds them all
    }
    results = {}
    for name, source in ((BARE, BARE_APP), ("sandloop", SANDLOOP_APP)):
        process, url = serve(source, env)
        try:
            results[name] = asyncio.run(
                measure(
                    url,
                    process.pid,
                    path,
                    headers,
                    args.streams,
                    args.reads,
                    args.hold,
                    name == BARE,
                )
            )
        finally:
            process.terminate()
            process.wait(30)
    print(f"{args.streams} open gallery streams on one thread, {args.reads} sequential reads:")
    for name, found in results.items():
        print(
            f"  {name:13} read median {found['idle_ms']:6.1f} ms idle, "
            f"{found['loaded_ms']:6.1f} ms loaded (p95 {found['loaded_p95_ms']:6.1f} ms); "
            f"server CPU while holding: {found['cpu_cores']:.2f} cores"
        )
    bare, ours = results[BARE], results["sandloop"]
    print(f"  ratio, loaded read median: {ours['loaded_ms'] / bare['loaded_ms']:.2f}x")
    print(  # the bare app does no work per stream: its CPU is ~0, so a ratio says nothing
        f"  sandloop's CPU over the bare app's while holding: "
        f"{ours['cpu_cores'] - bare['cpu_cores']:+.2f} cores (one poller for the thread)"
    )


if __name__ == "__main__":
    main()
