"""A real `prefect server start` (SQLite, 127.0.0.1, a free port) and its workers, for the tests
of deployments, schedules and continuations; the ephemeral API runs no scheduler.

Processes are started in their own process groups and stopped by PID: workers and `serve` first,
then the server (a server stopped under a running `serve` leaves it stuck).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def prefect_env(prefect_home: Path, api_url: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PREFECT_API_URL", None)
    env.update(
        {
            "PREFECT_HOME": str(prefect_home),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_UI_ENABLED": "false",
            "PREFECT_LOGGING_LEVEL": "WARNING",
            # Scheduled runs are created and picked up within a second or two, not ten.
            "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2",
            "PREFECT_WORKER_QUERY_SECONDS": "1",
            "PREFECT_RUNNER_POLL_FREQUENCY": "1",
        }
    )
    if api_url is not None:
        env["PREFECT_API_URL"] = api_url
    return env


@dataclass
class PrefectServer:
    home: Path
    port: int
    logs: Path
    process: subprocess.Popen[bytes]
    others: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def env(self, **extra: str) -> dict[str, str]:
        return {**prefect_env(self.home, self.api_url), **extra}

    def spawn(self, name: str, args: list[str], env: dict[str, str], cwd: Path) -> None:
        """Start a long-lived process (a worker, `sandloop serve`) stopped with the server."""
        log = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        self.others.append(
            subprocess.Popen(
                args, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        )

    def stop(self) -> None:
        for process in [*self.others, self.process]:
            _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=20)


def start(home: Path, timeout_s: float = 120, database: str | None = None) -> PrefectServer:
    """``database``: a PostgreSQL URL (postgresql+asyncpg://…); default SQLite in ``home``."""
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = open(home / "server.log", "wb")  # noqa: SIM115 - the server's lifetime
    env = prefect_env(home)
    if database is not None:
        env["PREFECT_API_DATABASE_CONNECTION_URL"] = database
    process = subprocess.Popen(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = PrefectServer(home, port, home, process)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"prefect server exited: {(home / 'server.log').read_text()[-2000:]}"
            )
        try:
            with urllib.request.urlopen(f"{server.api_url}/health", timeout=2) as response:
                if response.status == 200:
                    return server
        except OSError:
            time.sleep(0.5)
    server.stop()
    raise RuntimeError(f"prefect server did not answer within {timeout_s:.0f} s")
