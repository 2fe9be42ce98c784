"""`sandloop server start|status|stop` with real Prefect servers, on SQLite and on PostgreSQL, and
the commands that then use the managed server instead of a temporary one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import postgres_server
from tests.prefect_server import free_port

BIN = Path(sys.executable).parent
ECHO = str(Path(__file__).resolve().parents[2] / "examples" / "networks" / "echo.yaml")


def sandloop(
    env: dict[str, str], *args: str, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "sandloop"), *args], env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture
def server_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """No PREFECT_API_URL: the commands must find the managed server themselves."""
    env = dict(os.environ)
    env.pop("PREFECT_API_URL", None)
    env.update(
        {
            "SANDLOOP_SERVER_DIR": str(tmp_path / "server"),
            "SANDLOOP_HOME": str(tmp_path / "home"),
            "PREFECT_HOME": str(tmp_path / "client-prefect"),
            "PREFECT_UI_ENABLED": "false",
            "COLUMNS": "200",
        }
    )
    yield env
    sandloop(env, "server", "stop", timeout=60)  # whatever the test did, nothing is left running


def flow_run_names(api_url: str) -> list[str]:
    request = urllib.request.Request(
        f"{api_url}/flow_runs/filter",
        data=b"{}",
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return [run["name"] for run in json.loads(response.read())]


def alive(pid: int) -> bool:
    """A process that exited is gone, or a zombie its (adopting) parent has not reaped yet."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def check_lifecycle(env: dict[str, str], database: str | None, secret: str | None) -> None:
    port = str(free_port())
    args = ["server", "start", "--port", port] + (["--database", database] if database else [])
    started = sandloop(env, *args)
    assert started.returncode == 0, started.stderr
    assert f"started at http://127.0.0.1:{port}" in started.stdout

    status = sandloop(env, "server", "status", "--json")
    assert status.returncode == 0, status.stderr
    state = json.loads(status.stdout)
    assert state["running"] and state["url"] == f"http://127.0.0.1:{port}/api"
    assert state["database"] == (
        "sqlite" if database is None else database.replace(secret or "", "***")
    )
    pid = state["pid"]

    again = sandloop(env, *args)  # a second start finds the first
    assert again.returncode == 0 and "already running" in again.stdout
    assert sandloop(env, "server", "status", "--json").stdout == status.stdout

    # The run and a second one use the managed server, say so once, and stay in its record.
    for genesis in ("a red balloon", "a lighthouse"):
        run = sandloop(env, "run", ECHO, "--genesis", genesis, "--max-steps", "2")
        assert run.returncode == 0, run.stderr
        assert run.stderr.count(f"using the Prefect server at http://127.0.0.1:{port}") == 1
    # So does a notebook or script that calls the Python API (issue 37, item 16), on its own.
    script = (
        "from sandloop import api\n"
        f"spec = api.load_run_spec({ECHO!r}, genesis='a notebook', seed=1,"
        " stop={'max_steps': 1})\n"
        "print(api.run_network(spec).status)\n"
    )
    called = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=240
    )
    assert called.returncode == 0 and called.stdout.strip() == "completed", called.stderr
    names = flow_run_names(state["url"])
    assert sum(name.startswith("echo") for name in names) == 3, names

    if secret is not None:  # the database password is never written down or shown
        server_dir = Path(env["SANDLOOP_SERVER_DIR"])
        assert secret not in (server_dir / "server.json").read_text()
        assert secret not in started.stdout + status.stdout

    stopped = sandloop(env, "server", "stop")
    assert stopped.returncode == 0 and f"pid {pid}" in stopped.stdout
    assert not alive(pid)
    after = sandloop(env, "server", "status")
    assert after.returncode == 1 and "no Prefect server is running" in after.stdout
    # Without it, a command runs on a temporary server again, and suggests a server once.
    run = sandloop(env, "run", ECHO, "--genesis", "after", "--max-steps", "1")
    assert run.returncode == 0, run.stderr
    assert "using the Prefect server" not in run.stderr
    assert "`sandloop server start` keeps one up" in " ".join(run.stderr.split())


@pytest.mark.slow  # a server start and three runs: ~25 s, and the fast suite is near 10 min
def test_managed_server_on_sqlite(server_env: dict[str, str]) -> None:
    check_lifecycle(server_env, None, None)


@pytest.mark.slow
def test_managed_server_on_postgresql(server_env: dict[str, str]) -> None:
    if postgres_server.pg_bin() is None:
        pytest.skip("PostgreSQL is not installed (.ci/run installs it)")
    pg = postgres_server.start()
    try:
        check_lifecycle(server_env, pg.url, postgres_server.PASSWORD)
    finally:
        sandloop(server_env, "server", "stop", timeout=60)
        pg.stop()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--database", "mysql://u:hunter2@db/x"], "is not a PostgreSQL or SQLite URL"),
        (
            ["--database", "postgresql://u:hunter2@127.0.0.1:1/x", "--timeout", "60"],
            "the Prefect server did not start: ConnectionRefusedError",
        ),
    ],
)
def test_server_refusals_are_one_line(
    server_env: dict[str, str], args: list[str], message: str
) -> None:
    result = sandloop(server_env, "server", "start", "--port", str(free_port()), *args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and message in lines[-1], result.stderr
    assert "Traceback" not in result.stderr and "hunter2" not in result.stderr
    assert sandloop(server_env, "server", "status").returncode == 1


@pytest.mark.slow
def test_a_taken_port_is_refused(server_env: dict[str, str]) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = sandloop(server_env, "server", "start", "--port", str(port))
    assert result.returncode == 2
    assert f"error: port {port} on 127.0.0.1 is taken" in result.stderr
