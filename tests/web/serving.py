"""An app under uvicorn on a free 127.0.0.1 port, in a thread of the test process."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx


@contextmanager
def serving(app: Any, proxies: str = "") -> Iterator[str]:
    """Served as `sandloop api` serves it: the same uvicorn settings (`web.listen`)."""
    import uvicorn

    from sandloop.web.listen import uvicorn_config

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn_config(app, "127.0.0.1", port, proxies))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


# How long a request that starts a run may wait on the worker's SQLite Prefect server: on a
# loaded 2-core machine it has stalled for over a minute (a visitor's start timed out at 30 s,
# then at 60 s, in CI). The tests assert what is answered, not how soon.
START_TIMEOUT_S = 180


def client(base_url: str, token: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=base_url, headers=headers, timeout=START_TIMEOUT_S)


def wait_for_flow_run(
    http: httpx.Client, flow_run_id: str, timeout_s: float = 120
) -> dict[str, Any]:
    """The flow run's state once it is final (the test fails if it never gets there)."""
    deadline = time.monotonic() + timeout_s
    while True:
        state: dict[str, Any] = http.get(f"/v1/flow-runs/{flow_run_id}").json()
        if state["state"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            return state
        assert time.monotonic() < deadline, f"flow run still {state['state']}"
        time.sleep(0.2)
