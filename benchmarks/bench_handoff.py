"""End-to-end latency of a continuation hand-off, against waiting in-process.

A real `prefect server` (SQLite), the `sandloop` process pool, deployments/prefect.yaml deployed
from the repo root and one process worker (polling every second, Prefect's default prefetch of
10 s). The `balloon` deployment runs the echo network for 6 steps with a constant pace (3 s, shorter
than a flow-run process takes to start; 12 s, longer than the worker's prefetch) and a 1 s
hand-off threshold, so each of steps 1–5 runs in its own continuation flow run. Latency is how
late a step starts after it is due (the previous step's end + the pace), from the store.

The same run in one process (`api.run_network`, no deployment, so it sleeps) is the baseline.

Run: python benchmarks/bench_handoff.py
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import _common  # noqa: E402, F401 - quiet, private Prefect settings

STEPS = 6
# One pace shorter than a flow-run process takes to start, one longer than the worker's prefetch.
PACES_S = (3.0, 12.0)


def lateness(steps: Any, pace_s: float) -> list[float]:
    """How late each step after the first started, against its due time."""
    steps = steps.sort_values("step")
    due = steps["finished_at"].iloc[:-1].to_numpy()
    started = steps["started_at"].iloc[1:].to_numpy()
    return [(s - d).total_seconds() - pace_s for s, d in zip(started, due, strict=True)]


def run_fields(pace_s: float, genesis: str) -> dict[str, Any]:
    return {
        "network": "examples/networks/echo.yaml",
        "genesis": genesis,
        "seed": 3,
        "stop": {"max_steps": STEPS, "stop_on_repeat": False},
        "pace": {"kind": "constant", "seconds": pace_s, "hand_off_after_s": 1},
    }


def wait_completed(home: Path, thread: str) -> None:
    from sandloop import api

    while True:
        if (home / "akashic").exists():
            row = api.open_store(home).get_run(thread)
            if row is not None and row["status"] == "completed":
                return
        time.sleep(0.2)


def main() -> None:
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from tests import prefect_server

    from sandloop import api

    os.environ["SANDLOOP_EMBED_DURING_RUNS"] = "false"
    root = Path(tempfile.mkdtemp(prefix="bench-handoff-"))
    home = root / "home"
    server = prefect_server.start(root / "prefect")
    chains: dict[float, tuple[Any, float]] = {}
    try:
        env = server.env(SANDLOOP_HOME=str(home))
        prefect = str(prefect_server.BIN / "prefect")
        for args in (
            ["work-pool", "create", "sandloop", "--type", "process"],
            [
                "--no-prompt",
                "deploy",
                "--name",
                "balloon",
                "--prefect-file",
                "deployments/prefect.yaml",
            ],
        ):
            subprocess.run([prefect, *args], env=env, cwd=REPO, check=True, capture_output=True)
        server.spawn("worker", [prefect, "worker", "start", "--pool", "sandloop"], env, REPO)
        with temporary_settings({PREFECT_API_URL: server.api_url}):
            for pace_s in PACES_S:
                run = run_fields(pace_s, f"handed off every {pace_s}")
                thread = api.run_spec_from(run).thread()
                start = time.perf_counter()
                run_deployment("network-run/balloon", parameters={"run": run}, timeout=0)
                wait_completed(home, thread)
                chains[pace_s] = (api.run_steps(thread, home), time.perf_counter() - start)

            spec = api.run_spec_from(run_fields(PACES_S[0], "in process"))
            start = time.perf_counter()
            api.run_network(spec, root / "home-inline")
            inline_s = time.perf_counter() - start
            inline = api.run_steps(spec.thread(), root / "home-inline")
    finally:
        server.stop()

    print(f"{STEPS} steps, constant pace, hand-off above 1 s, {time.strftime('%F')}")
    for pace_s, (steps, wall_s) in chains.items():
        late = lateness(steps, pace_s)
        print(
            f"hand-off, {pace_s:4.0f} s pace ({steps['flow_run_id'].nunique()} flow runs): "
            f"steps start late by median {statistics.median(late):.2f} s, "
            f"max {max(late):.2f} s; trigger to completed {wall_s:.1f} s"
        )
    slept_ms = [x * 1000 for x in lateness(inline, PACES_S[0])]
    print(
        f"in-process, {PACES_S[0]:4.0f} s pace (1 flow run): steps start late by median "
        f"{statistics.median(slept_ms):.1f} ms, max {max(slept_ms):.1f} ms; "
        f"whole run {inline_s:.1f} s"
    )
    print(
        f"hand-off / in-process, whole run at {PACES_S[0]:.0f} s pace: "
        f"{chains[PACES_S[0]][1] / inline_s:.2f}x"
    )


if __name__ == "__main__":
    main()
