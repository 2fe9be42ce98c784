"""A newcomer's instant loop, from a shell: `sandloop run` of the 12-step echo network with the
managed server (`sandloop server start`), against a bare Prefect flow of one task on the same
managed server (the raw library: a Python process that imports Prefect and runs one flow), and
against the same run on a temporary (ephemeral) Prefect server, and with the run waiting for its
embeddings (`SANDLOOP_EMBED_DURING_RUNS=true`, the default before issue 37's item 16) on the
default embedding model.

Each is a fresh process, timed from spawn to exit, median of 3. Goal: managed ≤ bare + 1 s.

Run: python benchmarks/bench_cli_start.py
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
REPEATS = 3

BARE = """
from prefect import flow, task
from prefect.cache_policies import NO_CACHE

@task(cache_policy=NO_CACHE, persist_result=False)
def step(i: int) -> int:
    return i

@flow(persist_result=False)
def bare() -> None:
    step(0)

bare()
"""


def timed(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(args, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return elapsed


def main() -> None:
    base = {
        **os.environ,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PREFECT_HOME": tempfile.mkdtemp(prefix="bench-cli-prefect-"),
    }
    base.pop("PREFECT_API_URL", None)
    managed = {**base, "SANDLOOP_SERVER_DIR": tempfile.mkdtemp(prefix="bench-cli-server-")}
    ephemeral = {**base, "SANDLOOP_SERVER_DIR": tempfile.mkdtemp(prefix="bench-cli-none-")}
    sandloop = str(BIN / "sandloop")
    echo = str(REPO / "examples" / "networks" / "echo.yaml")
    subprocess.run([sandloop, "server", "start", "--port", "4287"], env=managed, check=True)
    try:
        url = "http://127.0.0.1:4287/api"

        def run(env: dict[str, str], i: int) -> float:
            home = tempfile.mkdtemp(prefix="bench-cli-home-")
            args = [sandloop, "run", echo, "--genesis", f"g {i}", "--max-steps", "12"]
            return timed([*args, "--home", home], env)

        timed([sys.executable, "-c", BARE], {**base, "PREFECT_API_URL": url})  # warm caches
        bare = [
            timed([sys.executable, "-c", BARE], {**base, "PREFECT_API_URL": url})
            for _ in range(REPEATS)
        ]
        ours = [run(managed, i) for i in range(REPEATS)]
        waiting = [run({**managed, "SANDLOOP_EMBED_DURING_RUNS": "true"}, i) for i in range(3)]
        temporary = [run(ephemeral, i) for i in range(REPEATS)]
    finally:
        subprocess.run([sandloop, "server", "stop"], env=managed, check=True)
    b, m, w, e = (statistics.median(x) for x in (bare, ours, waiting, temporary))
    print(f"a 12-step echo run, fresh process, median of {REPEATS}, {time.strftime('%F')}")
    print(f"  bare Prefect flow, one task, managed server:  {b:6.2f} s")
    print(f"  sandloop run, managed server:                 {m:6.2f} s  (bare + {m - b:.2f} s)")
    print(f"  … waiting for its embeddings (MiniLM):        {w:6.2f} s")
    print(f"  sandloop run, ephemeral Prefect server:       {e:6.2f} s")
    print(f"  ratio ephemeral/managed: {e / m:.1f}x; ratio managed/bare: {m / b:.2f}x")


if __name__ == "__main__":
    main()
