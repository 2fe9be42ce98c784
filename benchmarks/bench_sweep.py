"""A sweep against the loops it replaces: 256 threads × 20 steps of `dummy:text`.

- sweep: `api.run_sweep`, one flow run, one batched task run per tick (inside the flow run);
- bare: a Python loop over the same model calls, writing the same rows in one LanceDB add;
- sequential: `api.run_network` per thread, as 256 `sandloop run`s would; a sample of 8 runs,
  extrapolated to 256 (each run is the same work, so the sample's mean is the estimate).

Also counted: the sweep's task runs. With `--delay-ms N` the dummy model takes N ms per call (a
batch pays it once), to show what batching buys on hardware where a call costs time.

    .venv/bin/python benchmarks/bench_sweep.py [--threads 256] [--steps 20] [--delay-ms 0]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import drain  # noqa: F401  (sets the private Prefect home first)

SAMPLE = 8


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    args = parser.parse_args()
    import lancedb
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    from sandloop import api
    from sandloop.loops.network import engine
    from sandloop.loops.protocol import Outcome
    from sandloop.loops.sweep.spec import SweepSpec
    from sandloop.models.base import CallContext, ModelInput
    from sandloop.models.dummy import DummyAdapter
    from sandloop.records import invocation_row

    params = {"delay_ms": args.delay_ms} if args.delay_ms else {}
    network = {"name": "bench", "models": [{"model": "dummy:text", "params": params}]}
    stop = {"max_steps": args.steps, "stop_on_repeat": False}
    genesis = [f"prompt {i}" for i in range(args.threads // 8)]
    sweep = SweepSpec.model_validate(
        {
            "name": "bench",
            "networks": [network],
            "genesis": genesis,
            "seeds": {"count": 8},
            "stop": stop,
            "max_concurrent": args.threads,
        }
    )
    threads = sum(1 for _ in sweep.members())
    steps = threads * args.steps

    def bare() -> float:
        """The same calls and rows, no Prefect, no log, one add at the end."""
        model = DummyAdapter("dummy:text")
        start = time.perf_counter()
        rows = []
        for member in sweep.members():
            loop = engine.resume(
                member.spec, member.thread, member.spec.genesis, datetime.now(UTC), _empty()
            )
            while loop.stop_reason(datetime.now(UTC)) is None:
                call = loop.plan()
                ctx = CallContext(call.seed, call.step_key, call.index)
                output = model.generate(ModelInput("text", text=call.input_value), call.params, ctx)
                now = datetime.now(UTC)
                outcome = Outcome(now, now, value=output.text or "")
                rows.append(invocation_row(call, outcome, loop.advance(call, outcome), None))
        lancedb.connect(tempfile.mkdtemp()).create_table("invocations", data=rows)
        return time.perf_counter() - start

    with (
        prefect_test_harness(server_startup_timeout=120),
        temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}),
    ):
        api.run_sweep(sweep.model_copy(update={"name": "warm-up"}), tempfile.mkdtemp())
        start = time.perf_counter()
        summary = api.run_sweep(sweep, tempfile.mkdtemp())
        sweep_s = time.perf_counter() - start
        sequential = []
        for member in list(sweep.members())[:SAMPLE]:
            spec = api.run_spec_from(
                {
                    "network": network,
                    "genesis": member.spec.genesis,
                    "seed": member.spec.seed,
                    "stop": stop,
                }
            )
            start = time.perf_counter()
            api.run_network(spec, tempfile.mkdtemp())
            sequential.append(time.perf_counter() - start)
    bare_s = bare()
    sequential_s = statistics.mean(sequential) * threads

    print(
        f"{threads} threads × {args.steps} steps of dummy:text (delay {args.delay_ms} ms), "
        f"{time.strftime('%Y-%m-%d')}"
    )
    print(f"sweep (one flow run):          {steps / sweep_s:9.0f} steps/s ({sweep_s:.1f} s)")
    print(f"bare loop + one LanceDB add:   {steps / bare_s:9.0f} steps/s ({bare_s:.2f} s)")
    print(
        f"sequential runs (8 of {threads}, extrapolated): {steps / sequential_s:6.0f} steps/s "
        f"({sequential_s:.0f} s)"
    )
    print(
        f"sweep / bare: {bare_s / sweep_s:.2f}x; sweep / sequential: "
        f"{sequential_s / sweep_s:.1f}x faster"
    )
    print(f"task runs: sweep {summary.task_runs} (ticks × models); sequential runs {steps}")


def _empty() -> object:
    import pandas as pd

    return pd.DataFrame()


if __name__ == "__main__":
    main()
