"""Throughput of M concurrent network runs over K = 1, 2, 4 `process` workers on one work pool,
all writing to one `s3://` home (moto's S3 server in its own process), on one Prefect server on
SQLite, then on PostgreSQL.

Each configuration: a fresh bucket, K workers (each its own folder and cache, at most M/K flow
runs at a time), M deployment runs of STEPS steps of `dummy:text` submitted at once; timed from
the first submission to the last run's completion. The raw-library baseline is the same M×STEPS
steps in one process (`sandloop run`'s code path, no workers), so the ratio shows what the
workers buy on this machine.

Run: python benchmarks/bench_workers.py [sqlite] [postgresql]   (default: both)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_remote_home import start_moto  # noqa: E402

M, STEPS = 8, 20
NETWORK = {"name": "bench", "models": ["dummy:text"]}


def run_fields(i: int) -> dict[str, Any]:
    return {
        "network": NETWORK,
        "genesis": f"g {i}",
        "seed": i,
        "stop": {"max_steps": STEPS, "stop_on_repeat": False},
    }


def with_workers(k: int, endpoint: str, s3: Any, database: str | None = None) -> float:
    import yaml
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from tests import prefect_server

    from sandloop.storage.store import AkashicStore

    root = Path(tempfile.mkdtemp(prefix=f"bench-workers-{k}-"))
    bucket = f"bench-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    home = f"s3://{bucket}/home"
    server = prefect_server.start(root / "prefect", database=database)
    try:
        (root / "prefect.yaml").write_text(
            yaml.safe_dump(
                {
                    "name": "bench",
                    "pull": [
                        {"prefect.deployments.steps.set_working_directory": {"directory": "."}}
                    ],
                    "deployments": [
                        {
                            "name": "bench",
                            "entrypoint": "sandloop.flows.network:network_run",
                            "work_pool": {"name": "pool"},
                        }
                    ],
                }
            )
        )
        env = server.env(SANDLOOP_HOME=home, SANDLOOP_EMBED_DURING_RUNS="false")
        prefect = str(prefect_server.BIN / "prefect")
        for args in (
            ["work-pool", "create", "pool", "--type", "process", "--overwrite"],
            ["--no-prompt", "deploy", "--all"],
        ):
            subprocess.run([prefect, *args], env=env, cwd=root, check=True, capture_output=True)
        for w in range(k):
            host = root / f"host-{w}"
            host.mkdir()
            worker_env = {**env, "XDG_CACHE_HOME": str(host / "cache")}
            limit = str(max(1, M // k))
            server.spawn(
                f"w{w}",
                [prefect, "worker", "start", "--pool", "pool", "--limit", limit],
                worker_env,
                host,
            )
        time.sleep(3)  # the workers poll once before anything is due
        with temporary_settings({PREFECT_API_URL: server.api_url}):
            start = time.perf_counter()
            for i in range(M):
                run_deployment(
                    "network-run/bench",
                    parameters={"run": run_fields(i)},
                    timeout=0,
                    as_subflow=False,
                )
            while True:
                frame = AkashicStore.open(home, readonly=True).runs()
                if len(frame) == M and set(frame["status"]) == {"completed"}:
                    break
                time.sleep(0.5)
            return time.perf_counter() - start
    finally:
        server.stop()


def in_one_process(endpoint: str, s3: Any) -> float:
    bucket = f"bench-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    code = (
        f"import sys; sys.path.insert(0, {str(REPO / 'benchmarks')!r})\n"
        "from bench_workers import run_fields\n"
        "from sandloop import api\n"
        f"for i in range({M}):\n"
        f"    api.run_network(api.run_spec_from(run_fields(i)), {f's3://{bucket}/home'!r})\n"
    )
    env = {**os.environ, "SANDLOOP_EMBED_DURING_RUNS": "false"}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    import boto3

    process, endpoint = start_moto()
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench-secret",
            "AWS_REGION": "us-east-1",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_LOGGING_LEVEL": "WARNING",
        }
    )
    s3 = boto3.client("s3", endpoint_url=endpoint)
    from tests import postgres_server

    backends = sys.argv[1:] or ["sqlite", "postgresql"]
    total = M * STEPS
    print(
        f"{M} runs × {STEPS} steps of dummy:text on one s3:// home (moto), "
        f"{time.strftime('%F')}, {os.cpu_count()} cores"
    )
    pg = postgres_server.start() if "postgresql" in backends else None
    try:
        single = in_one_process(endpoint, s3)
        print(
            f"  one process, runs one after another: {total / single:6.1f} steps/s ({single:.1f} s)"
        )
        for backend in backends:
            database = pg.url if backend == "postgresql" and pg is not None else None
            for k in (1, 2, 4):
                seconds = with_workers(k, endpoint, s3, database)
                print(
                    f"  {k} worker(s), {backend + ':':12}{'':11}{total / seconds:6.1f} steps/s "
                    f"({seconds:.1f} s), ratio to one process {single / seconds:.2f}x",
                    flush=True,
                )
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        if pg is not None:
            pg.stop()


if __name__ == "__main__":
    main()
