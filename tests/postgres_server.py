"""A real PostgreSQL (Debian's `postgresql` package) in a temp folder on 127.0.0.1 and a free
port, for the tests of a PostgreSQL-backed Prefect server.

PostgreSQL refuses to run as root: as root the cluster belongs to the package's `postgres` user
and every command runs as that user. It is stopped with `pg_ctl stop` (by its PID file).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.prefect_server import free_port

USER = "sandloop"
PASSWORD = "pg-test-secret"


def pg_bin() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(candidates[-1]).parent if candidates else None


def _as_owner(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


@dataclass
class Postgres:
    root: Path
    port: int
    bin: Path

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://{USER}:{PASSWORD}@127.0.0.1:{self.port}/prefect"

    def stop(self) -> None:
        subprocess.run(
            _as_owner(
                [str(self.bin / "pg_ctl"), "-D", str(self.root / "data"), "-m", "fast", "stop"]
            ),
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(self.root, ignore_errors=True)


def start() -> Postgres:
    """initdb, start, and create the `prefect` database; raises if PostgreSQL is missing."""
    binary = pg_bin()
    if binary is None:
        raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
    # Not under pytest's tmp_path: as root that folder is closed to the postgres user.
    root = Path(tempfile.mkdtemp(prefix="sandloop-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    (root / "pw").write_text(PASSWORD + "\n")
    os.chmod(root / "pw", 0o644)
    port = free_port()

    def run(args: list[str]) -> None:
        done = subprocess.run(_as_owner(args), capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {done.stdout[-1000:]} {done.stderr[-1000:]}")

    run(
        [
            str(binary / "initdb"),
            "-D",
            str(root / "data"),
            "-U",
            USER,
            f"--pwfile={root / 'pw'}",
            "--auth=scram-sha-256",
            "-E",
            "UTF8",
        ]
    )
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    run(
        [
            str(binary / "pg_ctl"),
            "-D",
            str(root / "data"),
            "-o",
            options,
            "-l",
            str(root / "log"),
            "-w",
            "start",
        ]
    )
    server = Postgres(root, port, binary)
    env = {**os.environ, "PGPASSWORD": PASSWORD}
    done = subprocess.run(
        _as_owner(
            [
                "env",
                f"PGPASSWORD={PASSWORD}",
                str(binary / "createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-U",
                USER,
                "prefect",
            ]
        ),
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    if done.returncode != 0:
        server.stop()
        raise RuntimeError(f"createdb failed: {done.stderr[-1000:]}")
    return server
