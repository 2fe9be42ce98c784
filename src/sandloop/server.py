"""A Prefect server kept running in the background for this machine's sandloop commands.

Without one, every command pays Prefect's ephemeral start (15.7 s measured, against 0.9 s for the
first flow call on a running server) and its runs vanish from the UI when it exits. The server is
Prefect's own (`prefect server start`), on SQLite or PostgreSQL; sandloop only starts it in its
own session, keeps its PID, address and log in a state folder, and stops it by that PID.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from sandloop.errors import SandloopError

STATE_FILE = "server.json"
LOG_FILE = "server.log"
#: Left in the state folder once a command has suggested `sandloop server start`: said once.
HINTED_FILE = "hinted"
DEFAULT_PORT = 4200


class ServerError(SandloopError, ValueError):
    """The server cannot be started or reached; one line that says what to change."""


@dataclass(frozen=True)
class ServerState:
    pid: int
    url: str  # the API URL, as PREFECT_API_URL takes it
    database: str  # "sqlite" or the PostgreSQL URL with its password masked
    started_at: str
    log: str

    @property
    def ui_url(self) -> str:
        return self.url.removesuffix("/api")


def database_url(url: str | None, prefect_home: Path) -> str:
    """PostgreSQL goes through asyncpg (Prefect's driver); a bare ``postgresql://`` URL is
    taken to mean it. SQLite lives in the state folder unless a file is named."""
    if url is None:
        return f"sqlite+aiosqlite:///{prefect_home / 'prefect.db'}"
    scheme = urlsplit(url).scheme
    if scheme in ("postgresql", "postgres"):
        return "postgresql+asyncpg" + url[len(scheme) :]
    if scheme in ("postgresql+asyncpg", "sqlite+aiosqlite"):
        return url
    raise ServerError(
        f"--database {mask_password(url)!r} is not a PostgreSQL or SQLite URL; give "
        "postgresql+asyncpg://USER:PASSWORD@HOST:PORT/DB (or leave it out for SQLite)"
    )


def mask_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def describe_database(url: str) -> str:
    return "sqlite" if url.startswith("sqlite") else mask_password(url)


def read_state(state_dir: Path) -> ServerState | None:
    try:
        data = json.loads((state_dir / STATE_FILE).read_text())
        return ServerState(**data)
    except (OSError, ValueError, TypeError):
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped) answers kill(0) but serves nothing
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (OSError, IndexError):
        return True


def _is_prefect(pid: int) -> bool:
    """A stale state file's PID may belong to another program by now: never signal that."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return _pid_alive(pid)  # no /proc (macOS): trust the PID
    return b"prefect" in command or b"uvicorn" in command


def healthy(url: str, timeout_s: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout_s) as response:
            return bool(response.status == 200)
    except (OSError, ValueError):
        return False


def running(state_dir: Path) -> ServerState | None:
    """The managed server, if its process lives and its API answers; a stale state file (a
    reboot, a killed server) is treated as no server."""
    state = read_state(state_dir)
    if state is None or not _pid_alive(state.pid) or not _is_prefect(state.pid):
        return None
    if not healthy(state.url):
        return None
    return state


def configured_state_dir() -> Path | None:
    """The state folder the settings name (``SANDLOOP_SERVER_DIR``), or None when a setting is
    bad: the command itself reports that."""
    from sandloop.config import Settings

    try:
        return Settings().server_dir.expanduser()
    except ValueError:
        return None


def managed() -> ServerState | None:
    """The server `sandloop server start` keeps for the configured state folder, if it
    answers: what the CLI and the Python API use when the process names no server."""
    state_dir = configured_state_dir()
    return running(state_dir) if state_dir is not None else None


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _last_error(log: Path) -> str:
    """The line of the server's log that says why it stopped (its traceback's last line)."""
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines()]
    except OSError:
        return "it wrote no log"
    lines = [line for line in lines if line]
    for line in reversed(lines):
        if "Error" in line or "error" in line or "refused" in line:
            return line[:400]
    return lines[-1][:400] if lines else "it wrote no log"


def start(
    state_dir: Path,
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    database: str | None = None,
    timeout_s: float = 120,
    extra_env: dict[str, str] | None = None,
    tick: Callable[[float], None] | None = None,
) -> tuple[ServerState, bool]:
    """Start the server (or find it already up); returns it and whether it was started now."""
    current = running(state_dir)
    if current is not None:
        return current, False
    prefect_home = state_dir / "prefect"
    db_url = database_url(database, prefect_home)
    if not _port_free(host, port):
        raise ServerError(
            f"port {port} on {host} is taken by another program; choose another with --port"
        )
    prefect_home.mkdir(parents=True, exist_ok=True)
    log = state_dir / LOG_FILE
    env = {
        **os.environ,
        "PREFECT_HOME": str(prefect_home),
        "PREFECT_API_DATABASE_CONNECTION_URL": db_url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        **(extra_env or {}),
    }
    env.pop("PREFECT_API_URL", None)  # the server is not a client of another server
    prefect = Path(sys.executable).with_name("prefect")
    with log.open("wb") as handle:
        process = subprocess.Popen(
            [str(prefect), "server", "start", "--host", host, "--port", str(port)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives this command and its terminal's Ctrl-C
            cwd=state_dir,
        )
    shown_host = host if host not in ("0.0.0.0", "::") else "127.0.0.1"
    state = ServerState(
        pid=process.pid,
        url=f"http://{shown_host}:{port}/api",
        database=describe_database(db_url),
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        log=str(log),
    )
    began = time.monotonic()
    while not healthy(state.url):
        if process.poll() is not None:
            raise ServerError(f"the Prefect server did not start: {_last_error(log)} (log: {log})")
        if time.monotonic() - began > timeout_s:
            _terminate(process.pid)
            raise ServerError(
                f"the Prefect server did not answer within {timeout_s:.0f} s (log: {log})"
            )
        if tick is not None:
            tick(time.monotonic() - began)
        time.sleep(0.25)
    (state_dir / STATE_FILE).write_text(json.dumps(asdict(state), indent=2) + "\n")
    return state, True


def _terminate(pid: int, timeout_s: float = 30) -> None:
    """SIGTERM to the server's process group (uvicorn and its services), SIGKILL if it lingers."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                waited, _ = os.waitpid(pid, os.WNOHANG)  # our child only when started here
            except ChildProcessError:
                waited = 0
            if waited == pid or not _pid_alive(pid):
                return
            time.sleep(0.1)


def stop(state_dir: Path) -> ServerState | None:
    """Stop the managed server; None when none was running (a stale state file is removed)."""
    state = read_state(state_dir)
    if state is None:
        return None
    alive = _pid_alive(state.pid) and _is_prefect(state.pid)
    if alive:
        _terminate(state.pid)
    (state_dir / STATE_FILE).unlink(missing_ok=True)
    return state if alive else None
