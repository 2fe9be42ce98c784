"""What the one loop driver costs per step, against the code before it, in one run.

The same 200-step network run of `dummy:text` is timed inside its flow run (the steps only),
with the code of `--before` (default e013193, the last commit before the driver) and with the
working tree, interleaved, each in its own process against one shared Prefect server. Both run
with the background embedding of outputs on (the default) and off
(`SANDLOOP_EMBED_DURING_RUNS=false`): on two cores it competes with the loop for the CPU. Each
process also times a bare no-op Prefect task per step, the floor that any Prefect step pays, so
each version is also given as a ratio to that floor.

    .venv/bin/python benchmarks/bench_driver.py [--before REV] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import drain  # noqa: F401  (sets the private Prefect home first)

ROOT = Path(__file__).resolve().parents[1]
STEPS = 200

CHILD = """
import json, statistics, sys, tempfile, time
sys.path.insert(0, {bench!r})
from _common import drain
from pathlib import Path
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
from sandloop import api

STEPS = {steps}
network = Path(tempfile.mkdtemp()) / "bench.yaml"
network.write_text("name: bench\\nmodels: [dummy:text]\\n")

def spec(genesis):
    return api.load_run_spec(network, genesis=genesis, seed=7,
                             stop={{"max_steps": STEPS, "stop_on_repeat": False}})

@task(task_run_name="noop {{i}}", cache_policy=NO_CACHE, persist_result=False)
def noop(i):
    return i

noop_s = []

@flow(persist_result=False)
def noop_flow():
    start = time.perf_counter()
    for i in range(STEPS):
        noop(i, return_state=True)
    noop_s.append(time.perf_counter() - start)

with temporary_settings({{PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}}):
    warm = api.run_network(spec("warm-up"), tempfile.mkdtemp())
    drain(warm["flow_run_id"] if isinstance(warm, dict) else warm.flow_run_id, STEPS)
    steps_s = []
    for n in range({repeats}):
        summary = api.run_network(spec(f"run {{n}}"), tempfile.mkdtemp())
        get = summary.get if isinstance(summary, dict) else summary.__getattribute__
        steps_s.append(get("duration_s"))
        drain(get("flow_run_id"), STEPS)
        state = noop_flow(return_state=True)
        drain(str(state.state_details.flow_run_id), STEPS)
print(json.dumps({{"step_ms": statistics.median(steps_s) * 1000 / STEPS,
                   "noop_ms": statistics.median(noop_s) * 1000 / STEPS,
                   "code": __import__("sandloop").__file__}}))
"""


def source_of(rev: str) -> Path:
    """The `src` tree of ``rev``, unpacked in a temporary folder."""
    archive = subprocess.run(
        ["git", "archive", rev, "src"], cwd=ROOT, check=True, capture_output=True
    ).stdout
    folder = Path(tempfile.mkdtemp(prefix=f"sandloop-{rev[:7]}-"))
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    return folder / "src"


def working_tree() -> Path:
    """A copy of the working tree's `src`, so editing the code while this runs changes nothing."""
    folder = Path(tempfile.mkdtemp(prefix="sandloop-now-")) / "src"
    shutil.copytree(
        ROOT / "src", folder, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    return folder


def measure(src: Path, api_url: str, repeats: int, embed: bool) -> dict[str, float]:
    env = {
        **os.environ,
        "PYTHONPATH": str(src),
        "PREFECT_API_URL": api_url,
        "SANDLOOP_EMBED_DURING_RUNS": "true" if embed else "false",
    }
    code = CHILD.format(bench=str(Path(__file__).parent), steps=STEPS, repeats=repeats)
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    assert str(result["code"]).startswith(str(src)), result  # the version we meant ran
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", default="e013193")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    sources = {"before": source_of(args.before), "after": working_tree()}
    runs = [(code, embed) for embed in (True, False) for code in ("before", "after")]
    results: dict[tuple[str, bool], list[dict[str, float]]] = {run: [] for run in runs}
    with prefect_test_harness(server_startup_timeout=120):
        url = str(PREFECT_API_URL.value())
        for _ in range(args.rounds):  # interleaved, so a drifting machine hits all alike
            for code, embed in runs:
                results[code, embed].append(measure(sources[code], url, args.repeats, embed))

    def median(run: tuple[str, bool], field: str) -> float:
        return statistics.median(r[field] for r in results[run])

    print(
        f"{STEPS} steps of dummy:text, {args.rounds} rounds × {args.repeats} runs, medians, "
        f"{time.strftime('%Y-%m-%d')}"
    )
    for embed in (True, False):
        print("embedding outputs during the run" if embed else "no embedding during the run")
        for code, label in (("before", f"before ({args.before})"), ("after", "after (driver)")):
            step, noop = median((code, embed), "step_ms"), median((code, embed), "noop_ms")
            print(
                f"  {label:<20} {step:6.2f} ms/step; no-op task {noop:5.2f} ms; "
                f"ratio to the no-op {step / noop:4.2f}x"
            )
        ratio = median(("after", embed), "step_ms") / median(("before", embed), "step_ms")
        print(f"  after / before: {ratio:.2f}x")


if __name__ == "__main__":
    main()
