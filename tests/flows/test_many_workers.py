"""The README's "Scaling out" recipe, run: a Prefect server, two `process` workers on one work
pool that share no local disk (each its own working folder, home folder and cache), two
deployments, and one `s3://` home on moto's S3 server. Eight runs spread over the workers, a
paced run's continuations are picked up by whichever worker is free, and every thread ends
complete, contiguous and without a duplicate key.

Slow (a server, two workers, a process per flow run): run by `make test-slow` and CI.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from sandloop.api import run_spec_from
from sandloop.storage.store import AkashicStore
from tests import prefect_server
from tests.s3_server import S3Server

pytestmark = pytest.mark.slow

ECHO = {"name": "echo", "models": ["dummy:text", {"model": "dummy:text", "role": "answer"}]}
SLOW = {"name": "slow", "models": [{"model": "dummy:text", "params": {"delay_ms": 100}}]}


def deployment(name: str, network: dict[str, Any]) -> dict[str, Any]:
    """The network travels inline in the parameters: a worker needs no spec file of ours."""
    return {
        "name": name,
        "entrypoint": "sandloop.flows.network:network_run",
        "parameters": {"run": {"network": network, "genesis": "-", "stop": {"max_steps": 6}}},
        "work_pool": {"name": "pool"},
    }


@pytest.fixture
def cluster(
    tmp_path: Path, s3: S3Server
) -> Iterator[tuple[prefect_server.PrefectServer, str, Path]]:
    server = prefect_server.start(tmp_path / "prefect")
    home = f"s3://{s3.bucket()}/home"
    try:
        deploy_dir = tmp_path / "deploy"
        deploy_dir.mkdir()
        (deploy_dir / "prefect.yaml").write_text(
            yaml.safe_dump(
                {
                    "name": "scale-out",
                    "prefect-version": "3.8.8",
                    # Each worker starts its flow runs in its own folder: nothing shared.
                    "pull": [
                        {"prefect.deployments.steps.set_working_directory": {"directory": "."}}
                    ],
                    "deployments": [deployment("echo", ECHO), deployment("slow", SLOW)],
                }
            )
        )
        env = server.env(**s3.env(), SANDLOOP_HOME=home)
        prefect = str(prefect_server.BIN / "prefect")
        for args in (
            ["work-pool", "create", "pool", "--type", "process"],
            ["--no-prompt", "deploy", "--all"],
        ):
            done = subprocess.run(
                [prefect, *args],
                env=env,
                cwd=deploy_dir,
                capture_output=True,
                text=True,
                timeout=180,
            )
            assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        for name in ("a", "b"):
            host = tmp_path / f"host-{name}"
            host.mkdir()
            worker_env = {**env, "HOME": str(host), "XDG_CACHE_HOME": str(host / "cache")}
            # Runs that embed as they go build an index in their worker's own cache folder:
            # how the test tells that both workers ran flow runs.
            worker_env["SANDLOOP_EMBED_DURING_RUNS"] = "true"
            server.spawn(
                f"worker-{name}",
                [
                    prefect,
                    "worker",
                    "start",
                    "--pool",
                    "pool",
                    "--name",
                    f"worker-{name}",
                    "--limit",
                    "4",
                ],
                worker_env,
                host,
            )
        yield server, home, tmp_path
    finally:
        server.stop()


def wait_for(check: Any, what: str, timeout_s: float = 400) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (found := check()) is not None:
            return found
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}")


def test_runs_spread_over_workers_on_one_s3_home(
    cluster: tuple[prefect_server.PrefectServer, str, Path],
    s3: S3Server,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    server, home, root = cluster
    for name, value in s3.env().items():
        monkeypatch.setenv(name, value)
    runs = []
    for i in range(8):
        network = ECHO if i % 2 else SLOW
        run: dict[str, Any] = {
            "network": network,
            "genesis": f"genesis {i}",
            "seed": i,
            "stop": {"max_steps": 6, "stop_on_repeat": False},
        }
        if i == 0:  # paced: its long waits become continuations any worker may pick up
            run["pace"] = {"kind": "constant", "seconds": 3, "hand_off_after_s": 2}
            run["stop"] = {"max_steps": 3, "stop_on_repeat": False}
        runs.append(run)
    with temporary_settings({PREFECT_API_URL: server.api_url}):
        for i, run in enumerate(runs):
            name = "network-run/slow" if i % 2 == 0 else "network-run/echo"
            run_deployment(name, parameters={"run": run}, timeout=0, as_subflow=False)
        threads = [run_spec_from(run).thread() for run in runs]

        def all_done() -> bool | None:
            store = AkashicStore.open(home, readonly=True)
            frame = store.runs()
            if len(frame) < 8 or set(frame["status"]) != {"completed"}:
                return None
            return True

        wait_for(all_done, "eight completed runs")

        def all_final() -> list[Any] | None:
            with get_client(sync_client=True) as client:
                found = client.read_flow_runs()
            return found if all(r.state is not None and r.state.is_final() for r in found) else None

        # A flow run lets go of its thread as soon as its record is written, then closes.
        flow_runs = wait_for(all_final, "every flow run to end", timeout_s=120)
    store = AkashicStore.open(home, readonly=True)
    stored = store.invocations()
    assert stored["key"].is_unique  # no step recorded twice
    for thread, run in zip(threads, runs, strict=True):
        steps = store.steps(thread)
        expected = run["stop"]["max_steps"]
        assert steps["step"].tolist() == list(range(expected)), thread
        assert set(steps["status"]) == {"ok"}
    # The paced run's steps came from more than one flow run: its continuations.
    paced = store.steps(threads[0])
    assert paced["flow_run_id"].nunique() >= 2
    # Both workers ran flow runs: each one's own cache folder holds an index it built.
    for name in ("a", "b"):
        assert list((root / f"host-{name}" / "cache").rglob("*.faiss")), (
            f"worker {name} ran nothing"
        )
    assert not [r.name for r in flow_runs if r.state is not None and r.state.is_failed()]
