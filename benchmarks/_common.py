"""Shared set-up for benchmarks: a quiet, private Prefect backend and timing helpers."""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="sandloop-bench-prefect-"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_TO_API_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


def drain(flow_run_id: str, expected: int) -> float:
    """Seconds until the Prefect server has recorded ``expected`` task runs of the flow run: it
    records them after the flow returns, and a backlog would be charged to the next run."""
    from uuid import UUID

    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    start = time.perf_counter()
    flow_filter = FlowRunFilter(id=FlowRunFilterId(any_=[UUID(flow_run_id)]))
    with get_client(sync_client=True) as client:
        while len(client.read_task_runs(flow_run_filter=flow_filter, limit=expected)) < expected:
            time.sleep(0.05)
    return time.perf_counter() - start


def median_seconds(fn: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def invocation_rows(n: int, thread: str = "b" * 32, offset: int = 0) -> list[dict[str, Any]]:
    """Rows shaped like real network steps (a 40-word output each)."""
    now = datetime.now(UTC)
    text = " ".join(["lantern"] * 40)
    return [
        {
            "key": f"{offset + i:032x}",
            "parent_key": f"{offset + i - 1:032x}",
            "realm": "r" * 32,
            "thread": thread,
            "step": offset + i,
            "step_key": f"{i:032x}",
            "facet": "dummy:text",
            "kind": "network",
            "model": "dummy:text",
            "input": text,
            "input_type": "text",
            "output": text,
            "output_type": "text",
            "params": '{"vocab":1000}',
            "seed": 7,
            "status": "ok",
            "error": None,
            "error_type": None,
            "started_at": now,
            "finished_at": now,
            "latency_ms": 1.0,
            "flow_run_id": "f",
            "task_run_id": "t",
            "metadata": "{}",
        }
        for i in range(n)
    ]


def peak_rss(code: str) -> tuple[float, float]:
    """(peak RSS in MiB, ``seconds``) of Python ``code`` run in a fresh process, from the
    benchmarks folder with ``Path`` imported; ``code`` may set ``seconds``. VmHWM, not
    ru_maxrss: Linux carries ru_maxrss across fork/exec, so a child of a large benchmark
    process would report its parent's peak."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r});"
        "from pathlib import Path; seconds = 0.0\n"
        f"{code}\n"
        "hwm = next(l for l in open('/proc/self/status') if l.startswith('VmHWM'))\n"
        "import json; print(json.dumps([int(hwm.split()[1]) / 1024, seconds]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    rss, seconds = json.loads(done.stdout.strip().splitlines()[-1])
    return float(rss), float(seconds)


def put_completed_run(store: Any, thread: str, name: str, steps: int, now: datetime) -> None:
    """The `runs` row of a network whose steps a benchmark wrote with bare LanceDB adds."""
    store.put_run(
        {
            "thread": thread,
            "realm": "r" * 32,
            "kind": "network",
            "name": name,
            "spec": "{}",
            "genesis": "g",
            "seed": 1,
            "status": "completed",
            "steps": steps,
            "created_at": now,
        }
    )
