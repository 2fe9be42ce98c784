"""Judging a snapshot of 1,000 outputs with `dummy:judge`, against a bare loop over the same
calls.

- judge: `api.judge_snapshot`, one flow run: a recipe run per output (its `runs` row, its
  recorded call, its final row), batched a round per model, and a `scores` row per verdict;
- bare: the same prompts rendered, the same model calls, the answers checked against the
  recipe's schema, and the same invocation and verdict rows written in one LanceDB add each.

The per-verdict overhead is (judge − bare) / verdicts: what recording each verdict as an
idempotent, resumable recipe run costs over calling the judge yourself.

    .venv/bin/python benchmarks/bench_judge.py [--outputs 1000]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import _common  # noqa: F401  (sets the private Prefect home first)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--outputs", type=int, default=1000)
    args = parser.parse_args()
    import lancedb
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    from sandloop import api
    from sandloop.exports import snapshot as snapshots
    from sandloop.exports.examples import transcript
    from sandloop.exports.writer import snapshot_examples
    from sandloop.flows.judge import judge_id
    from sandloop.loops.protocol import Outcome
    from sandloop.loops.recipe.context import prompt_for, resolve_context
    from sandloop.loops.recipe.engine import RefineLoop
    from sandloop.loops.recipe.spec import load_recipe
    from sandloop.loops.sweep.spec import SweepSpec
    from sandloop.models.base import CallContext, ModelInput
    from sandloop.models.dummy import DummyAdapter
    from sandloop.records import invocation_row
    from sandloop.scoring import Judged, verdict_row

    steps = 20
    threads = -(-args.outputs // steps)
    sweep = SweepSpec.model_validate(
        {
            "name": "judged",
            "networks": [{"name": "judged", "models": ["dummy:text"]}],
            "genesis": [f"prompt {i}" for i in range(threads)],
            "stop": {"max_steps": steps, "stop_on_repeat": False},
            "max_concurrent": threads,
        }
    )
    source = Path(tempfile.mkdtemp(prefix="sandloop-bench-judge-"))
    with (
        prefect_test_harness(server_startup_timeout=120),
        temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}),
    ):
        api.run_sweep(sweep, source)
        api.create_snapshot("all", source)
        store = api.open_store(source)
        row = snapshots.get(store, "all")
        assert row is not None
        pinned = snapshots.Pinned(store, row)
        catalog = api.model_catalog(source)
        examples = [e for e in snapshot_examples(pinned, catalog) if e.vector_key][: args.outputs]
        spec = load_recipe("judge-exchange", catalog, "dummy:judge")
        steps_of = {r["key"]: (r["thread"], int(r["step"])) for r in store.rows("invocations")}

        warm = Path(tempfile.mkdtemp()) / "home"
        shutil.copytree(source, warm)
        api.judge_snapshot("all", home=warm, model="dummy:judge", limit=20)
        home = Path(tempfile.mkdtemp()) / "home"
        shutil.copytree(source, home)
        start = time.perf_counter()
        summary = api.judge_snapshot("all", home=home, model="dummy:judge", limit=args.outputs)
        judge_s = time.perf_counter() - start

    def bare() -> float:
        model = DummyAdapter("dummy:judge")
        start = time.perf_counter()
        calls, verdicts = [], []
        for example in examples:
            values = resolve_context(spec, transcript(example.messages), {}, None)
            thread = spec.thread(values, None)
            loop = RefineLoop(spec, prompt_for(spec, values), thread, None)
            call = loop.plan()
            ctx = CallContext(call.seed, call.step_key, call.index)
            output = model.generate(ModelInput("text", text=call.input_value), call.params, ctx)
            now = datetime.now(UTC)
            outcome = Outcome(now, now, value=output.text or "")
            row = invocation_row(call, outcome, loop.advance(call, outcome), None)
            calls.append(row)
            parsed = loop.outcome().parsed
            judged = Judged(str(example.vector_key), *steps_of[str(example.vector_key)])
            verdicts.append(
                verdict_row(judged, parsed["score"], judge_id(spec), parsed["reason"], row["key"])
            )
        db = lancedb.connect(tempfile.mkdtemp())
        db.create_table("invocations", data=calls)
        db.create_table("scores", data=verdicts)
        return time.perf_counter() - start

    bare_s = min(bare() for _ in range(3))
    n = summary.verdicts
    day = time.strftime("%Y-%m-%d")
    print(f"{len(examples)} outputs judged by dummy:judge ({spec.name}), {day}")
    print(f"sandloop judge (one flow run): {n / judge_s:8.0f} verdicts/s ({judge_s:.2f} s)")
    print(f"bare loop + one LanceDB add:   {n / bare_s:8.0f} verdicts/s ({bare_s:.2f} s)")
    print(
        f"judge / bare: {bare_s / judge_s:.2f}x; overhead "
        f"{(judge_s - bare_s) / n * 1000:.2f} ms per verdict; task runs {summary.task_runs}"
    )


if __name__ == "__main__":
    main()
