"""A sweep's peak memory as its thread count grows: threads stream through a window of
`max_concurrent`, so what a sweep holds should not grow with its size.

Each size runs in a fresh process (`ru_maxrss` is a high-water mark): `--steps` steps of
`dummy:text` per thread, 1,000 genesis prompts × seeds as needed, a window of 256. The same
process first measures itself with everything imported and a Prefect test server up, so the
figure that matters is the growth above that baseline. "kept" is the process's memory after the
sweep once glibc has handed its free pages back (`malloc_trim`): what the sweep still holds.

    .venv/bin/python benchmarks/bench_sweep_memory.py [--sizes 1000,10000,100000] [--steps 2]
"""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # the child's size
    args = parser.parse_args()
    if args.one:
        print(json.dumps(_measure(args.one, args.steps)))
        return
    print(f"dummy:text, {args.steps} steps per thread, window 256, {time.strftime('%Y-%m-%d')}")
    heads = ["threads", "steps", "seconds", "steps/s", "base MB", "peak MB", "growth", "kept MB"]
    print(" ".join(f"{h:>9}" for h in heads))
    for size in (int(s) for s in args.sizes.split(",")):
        done = subprocess.run(
            [sys.executable, __file__, "--one", str(size), "--steps", str(args.steps)],
            capture_output=True,
            text=True,
            check=True,
        )
        m = json.loads(done.stdout.strip().splitlines()[-1])
        print(
            f"{size:>9} {m['steps']:>9} {m['seconds']:>9.1f} {m['steps'] / m['seconds']:>9.0f} "
            f"{m['base_mb']:>9.0f} {m['peak_mb']:>9.0f} {m['peak_mb'] - m['base_mb']:>9.0f} "
            f"{m['kept_mb']:>9.0f}"
        )


def _measure(size: int, steps: int) -> dict[str, float]:
    import resource
    import tempfile

    sys.path.insert(0, str(HERE))
    importlib.import_module("_common")  # sets the private Prefect home, before Prefect loads
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    from sandloop import api
    from sandloop.loops.sweep.spec import SweepSpec

    genesis = [f"prompt {i}" for i in range(min(size, 1000))]
    sweep = SweepSpec.model_validate(
        {
            "name": f"memory-{size}",
            "networks": [{"name": "m", "models": ["dummy:text"]}],
            "genesis": genesis,
            "seeds": {"count": -(-size // len(genesis))},
            "stop": {"max_steps": steps, "stop_on_repeat": False},
            "max_concurrent": 256,
        }
    )
    with (
        prefect_test_harness(server_startup_timeout=120),
        temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}),
    ):
        api.run_sweep(
            sweep.model_copy(update={"name": "warm-up", "genesis": genesis[:2], "seeds": [0]}),
            tempfile.mkdtemp(),
        )
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        start = time.perf_counter()
        summary = api.run_sweep(sweep, tempfile.mkdtemp())
        seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "steps": summary.steps_this_session,
        "seconds": seconds,
        "base_mb": base,
        "peak_mb": peak,
        "kept_mb": _kept_mb(),
    }


def _kept_mb() -> float:
    """What the process still holds once the allocators give back their free pages (glibc and
    Arrow's pool keep freed memory for reuse: the peak counts it, the sweep does not hold it)."""
    import ctypes
    import gc
    import os

    import pyarrow as pa

    gc.collect()
    pa.default_memory_pool().release_unused()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


if __name__ == "__main__":
    main()
