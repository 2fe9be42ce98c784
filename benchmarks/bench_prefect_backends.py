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
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from _common import drain  # noqa: E402

STEPS = 101
REPEATS = 5
#: Task runs one measure() makes: the first and warm-up runs, then per repeat 1 + 101 of each.
TASK_RUNS = 2 + REPEATS * 2 * (1 + STEPS)


def measure() -> dict[str, float]:
    """In this process, on whatever backend PREFECT_API_URL (or its absence) gives."""
    from prefect import flow, task
    from prefect.cache_policies import NO_CACHE
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    from sandloop import api
    from sandloop.loops.network.spec import RunSpec

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
        return str(api.run_network(spec, tempfile.mkdtemp()).flow_run_id)

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


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of these processes and all their descendants (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(entry.name)] = fields
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    total, todo = 0.0, list(pids)
    while todo:
        pid = todo.pop()
        if pid in stats:
            total += (int(stats[pid][11]) + int(stats[pid][12])) / ticks
        todo += children.get(pid, [])
    return total


def server_work(server: Any, extra_pids: list[int], env: dict[str, str]) -> dict[str, float]:
    """measure() in a child process, and the CPU the server (and its database) spent on it."""
    pids = [server.process.pid, *extra_pids]
    before = cpu_seconds(pids)
    found = in_child(env)
    found["server_cpu_ms_per_task"] = (cpu_seconds(pids) - before) / TASK_RUNS * 1000
    return found


def postmaster_pid(pg: Any) -> int:
    return int((pg.root / "data" / "postmaster.pid").read_text().split()[0])


def main() -> None:
    from tests import postgres_server, prefect_server

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
        served = server_work(server, [], {**base, **server.env()})
    finally:
        server.stop()
    pg = postgres_server.start()
    try:
        server = prefect_server.start(Path(tempfile.mkdtemp(prefix="bench-pg-")), database=pg.url)
        try:
            on_pg = server_work(server, [postmaster_pid(pg)], {**base, **server.env()})
        finally:
            server.stop()
    finally:
        pg.stop()

    print(f"Prefect backends, {STEPS - 1}-step slope, median of {REPEATS}, {time.strftime('%F')}")
    print(f"{'':34}{'ephemeral':>12}{'SQLite':>12}{'PostgreSQL':>12}")
    rows = [
        ("first flow call (start-up), s", "first_call_s", "{:12.2f}"),
        ("per flow run, sandloop, ms", "flow_run_ours_ms", "{:12.1f}"),
        ("per flow run, bare flow+task, ms", "flow_run_bare_ms", "{:12.1f}"),
        ("per step, sandloop, ms", "step_ours_ms", "{:12.2f}"),
        ("per step, bare task, ms", "step_bare_ms", "{:12.2f}"),
        ("server catch-up after 101 steps, s", "catch_up_s", "{:12.2f}"),
    ]
    for label, key, fmt in rows:
        print(
            f"{label:34}{fmt.format(ephemeral[key])}{fmt.format(served[key])}"
            f"{fmt.format(on_pg[key])}"
        )
    print(
        f"server CPU per task run (flow runs amortised; PostgreSQL's own processes included): "
        f"SQLite {served['server_cpu_ms_per_task']:.1f} ms, "
        f"PostgreSQL {on_pg['server_cpu_ms_per_task']:.1f} ms, ratio PostgreSQL/SQLite "
        f"{on_pg['server_cpu_ms_per_task'] / served['server_cpu_ms_per_task']:.2f}x"
    )
    for name, found in (("ephemeral", ephemeral), ("SQLite", served), ("PostgreSQL", on_pg)):
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
