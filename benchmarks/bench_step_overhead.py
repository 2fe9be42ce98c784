"""Per-step overhead of a sandloop network run vs a bare Python loop, dummy model, 200 steps.

sandloop: one Prefect flow run against a local Prefect API server (started before timing), one
task run per step, a write-ahead-log append per step, batched keyed upserts to LanceDB.
bare: the same model calls in a Python loop, then the same rows written to LanceDB in one `add`.
Then where the time goes: the same pieces measured alone. Between runs we wait until the server
has recorded every task run of the previous one (it does so asynchronously, after the flow
returns), and report that catch-up time too.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import drain, invocation_rows, median_seconds

STEPS = 200
REPEATS = 3


def main() -> None:
    import lancedb
    from prefect import flow, task
    from prefect.cache_policies import NO_CACHE
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    from sandloop import api, engine
    from sandloop.loops.network.spec import RunSpec
    from sandloop.models.base import CallContext, ModelInput
    from sandloop.models.dummy import DummyAdapter
    from sandloop.storage.store import AkashicStore
    from sandloop.storage.wal import ThreadLog

    model = DummyAdapter("dummy:text")

    def spec(genesis: str) -> RunSpec:
        return RunSpec.model_validate(
            {
                "network": {"name": "bench", "models": ["dummy:text"]},
                "genesis": genesis,
                "seed": 7,
                "stop": {"max_steps": STEPS, "stop_on_repeat": False},
            }
        )

    def bare_loop() -> None:
        db = lancedb.connect(tempfile.mkdtemp())
        text = "genesis"
        for step in range(STEPS):
            ctx = CallContext(7, str(step))
            text = model.generate(ModelInput("text", text=text), {}, ctx).text or ""
        db.create_table("invocations", data=invocation_rows(STEPS))

    bare_s = median_seconds(bare_loop, REPEATS)

    with (
        prefect_test_harness(server_startup_timeout=120),
        temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}),
    ):
        warm = api.run_network(spec("warm-up"), tempfile.mkdtemp())
        drain(warm.flow_run_id, STEPS)
        wall, in_flow, catch_up = [], [], []
        for n in range(REPEATS):
            start = time.perf_counter()
            summary = api.run_network(spec(f"run {n}"), tempfile.mkdtemp())
            wall.append(time.perf_counter() - start)
            in_flow.append(summary.duration_s)
            catch_up.append(drain(summary.flow_run_id, STEPS))

        noop_seconds: list[float] = []

        @task(task_run_name="noop {i}", cache_policy=NO_CACHE, persist_result=False)
        def noop(i: int) -> int:
            return i

        @flow(persist_result=False)
        def noop_flow() -> None:
            start = time.perf_counter()
            for i in range(STEPS):
                noop(i, return_state=True)
            noop_seconds.append(time.perf_counter() - start)

        for _ in range(REPEATS):
            state = noop_flow(return_state=True)
            drain(str(state.state_details.flow_run_id), STEPS)

    home = Path(tempfile.mkdtemp())
    store = AkashicStore.open(home)
    rows = invocation_rows(STEPS)

    def wal_appends() -> None:
        log = ThreadLog(store.wal_dir, "w" * 32)
        for row in rows:
            log.append(row)
        log.truncate()
        log.close()

    wal_s = median_seconds(wal_appends, REPEATS)
    upsert_s = median_seconds(lambda: store.upsert("invocations", rows), REPEATS)
    state = engine.resume(spec("plan"), "t" * 32, "g", engine.now_utc(), store.steps("none"))
    plan_s = median_seconds(lambda: [state.plan() for _ in range(STEPS)], REPEATS)

    per = 1000 / STEPS
    wall_s, in_flow_s = statistics.median(wall), statistics.median(in_flow)
    ours, steps_only, bare = wall_s * per, in_flow_s * per, bare_s * per
    print(f"steps: {STEPS}, median of {REPEATS} runs, {time.strftime('%Y-%m-%d')}")
    print(f"sandloop run, end to end:     {ours:7.2f} ms/step ({wall_s:.2f} s)")
    print(f"sandloop run, steps only:     {steps_only:7.2f} ms/step (inside the flow run)")
    print(f"bare loop + one LanceDB add:  {bare:7.2f} ms/step ({bare_s:.3f} s)")
    print(f"overhead (end to end):        {ours - bare:7.2f} ms/step; ratio {ours / bare:.0f}x")
    print(f"overhead (steps only):        {steps_only - bare:7.2f} ms/step")
    print("where the time goes (ms/step):")
    print(f"  prefect task run (no-op task):     {statistics.median(noop_seconds) * per:6.2f}")
    print(f"  write-ahead log append (fsync):    {wal_s * per:6.2f}")
    print(f"  LanceDB keyed upsert (amortised):  {upsert_s * per:6.2f}")
    print(f"  keys + params (engine.plan):       {plan_s * per:6.2f}")
    print(
        f"prefect server catch-up after the flow returned: {statistics.median(catch_up):.2f} s "
        f"({statistics.median(catch_up) * per:.1f} ms/step of server-side recording)"
    )


if __name__ == "__main__":
    main()
