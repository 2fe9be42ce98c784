"""Prefect's cost per flow run and per step, on the ephemeral API and on a real `prefect server`.

Each backend is measured in a fresh process (the ephemeral API starts a temporary server in every
process that uses it, and that start is part of its price):

- first call: from the process's first flow call to its return (ephemeral start-up included);
- per flow run: a 1-step sandloop network run vs a bare Prefect flow with one no-op task;
- per step: the slope between 1 and 101 steps, sandloop vs the bare flow's no-op tasks.

Between runs the server is left to record every task run of the last one (untimed, reported as
catch-up), or its backlog would be charged to the next run.

Run: python benchmarks/bench_prefect_backends.py
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from _common import drain  # noqa: E402

STEPS = 101
REPEATS = 5


def measure() -> dict[str, float]:
    """In this process, on whatever backend PREFECT_API_URL (or its absence) gives."""
    from prefect import flow, task
    from prefect.cache_policies import NO_CACHE
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    from sandloop import api
    from sandloop.specs import RunSpec

    @task(cache_policy=NO_CACHE, persist_result=False)
    def noop(i: int) -> int:
        return i

    @flow(persist_result=False)
    def bare(n: int) -> None:
        for i in range(n):
            noop(i, return_state=True)

    def bare_run(n: int, _: str) -> str:
        return str(bare(n, return_state=True).state_details.flow_run_id)

    def network_run(n: int, genesis: str) -> str:
        spec = RunSpec.model_validate(
            {
                "network": {"name": "bench", "models": ["dummy:text"]},
                "genesis": genesis,
                "seed": 1,
                "stop": {"max_steps": n, "stop_on_repeat": False},
            }
        )
        return str(api.run_network(spec, tempfile.mkdtemp())["flow_run_id"])

    catch_up: list[float] = []

    def timed(run: Callable[[int, str], str], n: int, label: str) -> float:
        start = time.perf_counter()
        flow_run_id = run(n, label)
        elapsed = time.perf_counter() - start
        catch_up.append(drain(flow_run_id, n))
        return elapsed

    with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        first = timed(bare_run, 1, "first")
        timed(network_run, 1, "warm")
        runs: dict[str, list[float]] = {k: [] for k in ("bare1", "bareN", "ours1", "oursN")}
        for r in range(REPEATS):
            runs["bare1"].append(timed(bare_run, 1, ""))
            runs["bareN"].append(timed(bare_run, STEPS, ""))
            runs["ours1"].append(timed(network_run, 1, f"one {r}"))
            runs["oursN"].append(timed(network_run, STEPS, f"many {r}"))
    med = {k: statistics.median(v) for k, v in runs.items()}
    return {
        "first_call_s": first,
        "flow_run_ours_ms": med["ours1"] * 1000,
        "flow_run_bare_ms": med["bare1"] * 1000,
        "step_ours_ms": (med["oursN"] - med["ours1"]) / (STEPS - 1) * 1000,
        "step_bare_ms": (med["bareN"] - med["bare1"]) / (STEPS - 1) * 1000,
        "catch_up_s": max(catch_up),
    }


def in_child(env: dict[str, str]) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, __file__, "--child"], env=env, capture_output=True, text=True, check=True
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    from tests import prefect_server

    base = {
        **os.environ,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_TO_API_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "SANDLOOP_EMBED_DURING_RUNS": "false",
    }
    base.pop("PREFECT_API_URL", None)
    ephemeral = in_child({**base, "PREFECT_HOME": tempfile.mkdtemp(prefix="bench-ephemeral-")})
    server = prefect_server.start(Path(tempfile.mkdtemp(prefix="bench-server-")))
    try:
        served = in_child({**base, **server.env(), "SANDLOOP_EMBED_DURING_RUNS": "false"})
    finally:
        server.stop()

    print(f"Prefect backends, {STEPS - 1}-step slope, median of {REPEATS}, {time.strftime('%F')}")
    print(f"{'':34}{'ephemeral':>12}{'server':>12}")
    rows = [
        ("first flow call (start-up), s", "first_call_s", "{:12.2f}"),
        ("per flow run, sandloop, ms", "flow_run_ours_ms", "{:12.1f}"),
        ("per flow run, bare flow+task, ms", "flow_run_bare_ms", "{:12.1f}"),
        ("per step, sandloop, ms", "step_ours_ms", "{:12.2f}"),
        ("per step, bare task, ms", "step_bare_ms", "{:12.2f}"),
        ("server catch-up after 101 steps, s", "catch_up_s", "{:12.2f}"),
    ]
    for label, key, fmt in rows:
        print(f"{label:34}{fmt.format(ephemeral[key])}{fmt.format(served[key])}")
    for name, found in (("ephemeral", ephemeral), ("server", served)):
        print(
            f"{name}: sandloop/bare per flow run "
            f"{found['flow_run_ours_ms'] / found['flow_run_bare_ms']:.2f}x, per step "
            f"{found['step_ours_ms'] / found['step_bare_ms']:.2f}x"
        )


if __name__ == "__main__":
    if "--child" in sys.argv:
        print(json.dumps(measure()))
    else:
        main()
