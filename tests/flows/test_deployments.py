"""Deployments against a real `prefect server` (SQLite, 127.0.0.1, a free port) with a `process`
worker and `sandloop serve`: `prefect deploy --all` of deployments/prefect.yaml, a paced run that
hands its long waits to a chain of scheduled flow runs (and a duplicate that changes nothing),
and a spec served from the command line.

Slow (a server, a worker and a process per flow run): run by `make test-slow` and CI.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from sandloop import api
from tests import prefect_server

pytestmark = [pytest.mark.slow, pytest.mark.alone]

REPO = Path(__file__).resolve().parents[2]
DEPLOYMENTS = {"balloon", "theaetetus", "oblique-card", "nightly", "nightly-datasets"}


class Deployed:
    def __init__(self, server: prefect_server.PrefectServer, home: Path) -> None:
        self.server, self.home = server, home


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    """A server, the `sandloop` process pool, everything in deployments/prefect.yaml deployed
    from the repo root, and a worker whose runs write to a fresh home."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    root = tmp_path_factory.mktemp("prefect-server")
    server = prefect_server.start(root / "prefect")
    home = root / "home"
    try:
        env = server.env(SANDLOOP_HOME=str(home))
        prefect = str(prefect_server.BIN / "prefect")
        for args in (
            ["work-pool", "create", "sandloop", "--type", "process"],
            ["--no-prompt", "deploy", "--all", "--prefect-file", "deployments/prefect.yaml"],
        ):
            done = subprocess.run(
                [prefect, *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=180
            )
            assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        server.spawn("worker", [prefect, "worker", "start", "--pool", "sandloop"], env, REPO)
        with temporary_settings({PREFECT_API_URL: server.api_url}):
            yield Deployed(server, home)
    finally:
        server.stop()  # the worker (and any serve) first, then the server


def client_call(action: Any) -> Any:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return action(client)


def thread_runs(thread: str) -> list[Any]:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags

    runs = client_call(
        lambda c: c.read_flow_runs(
            flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[f"thread:{thread[:12]}"]))
        )
    )
    return sorted(runs, key=lambda r: r.expected_start_time)


def ended(flow_run_id: Any) -> Any:
    """The flow run once its state is final, else None."""
    run = client_call(lambda c: c.read_flow_run(flow_run_id))
    return run if run.state.is_final() else None


def wait_for(check: Any, what: str, timeout_s: float = 240, every_s: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (found := check()) is not None:
            return found
        time.sleep(every_s)
    raise AssertionError(f"timed out waiting for {what}")


def run_row(home: Path, thread: str) -> dict[str, Any] | None:
    if not (home / "akashic").exists():
        return None
    return api.open_store(home).get_run(thread)


def completed(home: Path, thread: str) -> dict[str, Any] | None:
    row = run_row(home, thread)
    return row if row is not None and row["status"] == "completed" else None


def test_prefect_deploy_all_creates_every_deployment(deployed: Deployed) -> None:
    deployments = client_call(lambda c: c.read_deployments())
    by_name = {d.name: d for d in deployments}
    assert set(by_name) == DEPLOYMENTS
    assert all(d.work_pool_name == "sandloop" for d in deployments)
    assert by_name["balloon"].entrypoint == "sandloop.flows.network:network_run"
    assert by_name["balloon"].parameters["run"]["seed"] == "scheduled"
    schedules = {name: d.schedules for name, d in by_name.items() if d.schedules}
    assert set(schedules) == {"balloon", "theaetetus", "nightly", "nightly-datasets"}
    assert schedules["balloon"][0].schedule.cron == "0 */6 * * *"
    assert schedules["theaetetus"][0].schedule.interval == timedelta(days=1)
    assert not any(s.active for found in schedules.values() for s in found)  # examples: off


def test_a_paced_run_hands_its_long_waits_to_a_chain_of_flow_runs(deployed: Deployed) -> None:
    """Delays 1 s, 4 s, 16 s before steps 1–3; waits over 3 s are handed off, so steps 0–1 run in
    the first flow run and steps 2 and 3 each in a continuation scheduled at its due time. A
    duplicate started during the last wait finds that continuation and does nothing."""
    from prefect.deployments import run_deployment

    run = {
        "network": "examples/networks/echo.yaml",
        "genesis": "a paced balloon",
        "seed": 11,
        "stop": {"max_steps": 4, "stop_on_repeat": False},
        "pace": {"kind": "exponential", "base": 1, "factor": 4, "cap": 60, "hand_off_after_s": 3},
    }
    thread = api.run_spec_from(run).thread()
    first = client_call(lambda c: c.read_deployment_by_name("network-run/balloon"))
    run_deployment(first.id, parameters={"run": run}, timeout=0, as_subflow=False)

    def waiting_for_step_3() -> dict[str, Any] | None:
        row = run_row(deployed.home, thread)
        return row if row and row["status"] == "waiting" and row["steps"] == 3 else None

    waiting = wait_for(waiting_for_step_3, "the hand-off before step 3")
    shown = subprocess.run(
        [str(prefect_server.BIN / "sandloop"), "show", thread[:10], "--json"],
        env=deployed.server.env(SANDLOOP_HOME=str(deployed.home)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert json.loads(shown.stdout)["continuation"] == waiting["continuation"]
    duplicate = run_deployment(first.id, parameters={"thread": thread}, timeout=0, as_subflow=False)
    wait_for(lambda: completed(deployed.home, thread), "the run to complete")
    # The duplicate carries the thread's tag only once a worker has started it: waited for by id.
    extra = wait_for(lambda: ended(duplicate.id), "the duplicate to end")
    wait_for(
        lambda: all(r.state.is_final() for r in thread_runs(thread)) or None,
        "every flow run of the thread to end",
    )

    steps = api.run_steps(thread, deployed.home).sort_values("step")
    assert steps["step"].tolist() == [0, 1, 2, 3] and steps["key"].is_unique
    assert set(steps["status"]) == {"ok"}
    runs = {str(r.id): r for r in thread_runs(thread)}
    chain = steps["flow_run_id"].tolist()
    assert chain[0] == chain[1] and len({chain[1], chain[2], chain[3]}) == 3
    names = [runs[chain[i]].name for i in (0, 2, 3)]
    assert names == [
        f"echo · thread {thread[:6]} · steps 0–1",
        f"echo · thread {thread[:6]} · steps 2–2",
        f"echo · thread {thread[:6]} · steps 3–3",
    ]
    # Each continuation was scheduled for the previous step's end plus the policy's delay.
    finished = steps["finished_at"].tolist()
    for step, delay_s in ((2, 4), (3, 16)):
        scheduled = runs[chain[step]].expected_start_time
        assert abs((scheduled - finished[step - 1]).total_seconds() - delay_s) < 0.01
        assert steps["started_at"].iloc[step] >= scheduled
    assert waiting["continuation"] == chain[3]
    assert abs((waiting["next_due_at"] - finished[2]).total_seconds() - 16) < 0.01
    assert all(r.deployment_id == first.id for r in runs.values())
    # The duplicate ran, found the continuation already scheduled (or, started late on a busy
    # machine, the run finished), and left the thread alone.
    assert str(duplicate.id) in runs  # tagged with the thread it looked up
    assert extra.state.is_completed() and extra.name.endswith("no steps")
    assert str(duplicate.id) not in chain

    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    artifacts = client_call(
        lambda c: c.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[f"network-{thread[:12]}-steps"])
            )
        )
    )
    assert {str(a.flow_run_id) for a in artifacts} >= set(chain)


def test_sandloop_serve_serves_a_spec_with_its_continuations(
    deployed: Deployed, tmp_path: Path
) -> None:
    home = tmp_path / "served"
    env = deployed.server.env(SANDLOOP_HOME=str(home))
    args = [
        str(prefect_server.BIN / "sandloop"),
        "serve",
        "examples/networks/echo.yaml",
        "--name",
        "served",
        "--genesis",
        "served hello",
        "--seed",
        "5",
        "--max-steps",
        "3",
        "--pace",
        "constant:2",
        "--hand-off-after",
        "1",
        "--now",
    ]
    deployed.server.spawn("serve", args, env, REPO)
    spec = api.load_run_spec(REPO / "examples/networks/echo.yaml", genesis="served hello", seed=5)
    thread = spec.thread()
    wait_for(lambda: completed(home, thread), "the served run to complete")
    steps = api.run_steps(thread, home).sort_values("step")
    assert steps["step"].tolist() == [0, 1, 2]
    assert len(set(steps["flow_run_id"])) == 3  # each 2 s wait went to a continuation
    deployment = client_call(lambda c: c.read_deployment_by_name("network-run/served"))
    runs = {str(r.id): r for r in thread_runs(thread)}
    assert {runs[f].deployment_id for f in steps["flow_run_id"]} == {deployment.id}
