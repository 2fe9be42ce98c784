"""The CLI where the machine misbehaves: a full disk, a Prefect server answering 503, readers of
a run that is being written, and a second writer of a running thread."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from sandloop import api
from sandloop.storage.wal import ThreadLog
from tests.e2e.test_cli import ECHO, run_echo, sandloop

pytestmark = pytest.mark.slow

needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("mount") is None, reason="needs root to mount a tmpfs"
)


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


class _Unavailable(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def unavailable_prefect() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Unavailable)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/api"
    server.shutdown()


def test_a_prefect_server_answering_503_is_one_line_and_registers_nothing(
    cli_env: dict[str, str], home: Path, unavailable_prefect: str
) -> None:
    env = {**cli_env, "PREFECT_API_URL": unavailable_prefect, "PREFECT_CLIENT_MAX_RETRIES": "1"}
    done = run_echo("unanswered", 1, 3, env=env)
    assert done.returncode == 2
    assert "does not answer" in one_error_line(done.stderr)
    assert api.list_runs(home).empty


@needs_root
def test_a_full_disk_is_one_line_keeps_the_steps_and_the_home_works_again(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1500k", "tmpfs", str(disk)], check=True)
    try:
        env = {**cli_env, "SANDLOOP_HOME": str(disk / "home"), "SANDLOOP_FLUSH_EVERY": "4"}
        full = run_echo("full", 1, 100_000, "--no-stop-on-repeat", env=env)
        assert full.returncode == 1
        assert "no space left on device" in one_error_line(full.stderr)
        (before,) = json.loads(sandloop("runs", "--json", env=env).stdout)
        assert before["status"] == "interrupted" and before["steps"] > 0
        shown = json.loads(sandloop("show", before["thread"], "--json", env=env).stdout)
        kept = shown["steps"]
        assert [s["step"] for s in kept] == list(range(len(kept)))

        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
        total = len(kept) + 8
        resumed = run_echo("full", 1, total, "--no-stop-on-repeat", "--json", env=env)
        assert resumed.returncode == 0, resumed.stderr
        summary = json.loads(resumed.stdout)
        assert summary["steps_total"] == total and summary["steps_this_session"] == 8
        steps = summary["steps"]
        assert [s["step"] for s in steps] == list(range(total))
        assert len({s["key"] for s in steps}) == total
        assert [s["key"] for s in steps[: len(kept)]] == [s["key"] for s in kept]
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_readers_of_a_live_run_see_a_growing_prefix(cli_env: dict[str, str], home: Path) -> None:
    """`show --json` and `api.run_steps`, polled while a fast run flushes every 4 steps."""
    env = {**cli_env, "SANDLOOP_FLUSH_EVERY": "4"}
    args = [sys.executable, "-m", "sandloop.cli", "run", str(ECHO), "--genesis", "polled"]
    args += ["--seed", "5", "--max-steps", "400", "--no-stop-on-repeat"]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seen: list[int] = []
    try:
        deadline = time.monotonic() + 180
        while not (home / "akashic" / "runs.lance").exists():
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.1)
        thread = ""
        while proc.poll() is None or len(seen) < 3:
            frame = api.list_runs(home)
            if frame.empty:
                continue
            thread = str(frame["thread"][0])
            steps = list(api.run_steps(thread, home)["step"])
            for read in (steps, [s["step"] for s in _show(thread, env)]):
                assert read == list(range(len(read))), f"a hole: {read}"
                assert not seen or len(read) >= seen[-1], f"shrank: {seen[-1]} → {len(read)}"
                seen.append(len(read))
    finally:
        proc.wait(timeout=300)
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
    assert seen[-1] == 400 and len(set(seen)) > 2, seen


def _show(thread: str, env: dict[str, str]) -> list[dict[str, object]]:
    done = sandloop("show", thread, "--json", env=env)
    assert done.returncode == 0, done.stderr
    steps: list[dict[str, object]] = json.loads(done.stdout)["steps"]
    return steps


def test_a_refused_second_writer_changes_nothing(cli_env: dict[str, str], home: Path) -> None:
    first = run_echo("owned", 2, 6, env=cli_env)
    assert first.returncode == 0, first.stderr
    (row,) = api.list_runs(home).to_dict("records")
    store = api.open_store(home)
    spec_before = store.get_run(row["thread"])["spec"]  # type: ignore[index]
    holder = ThreadLog(store.wal_dir, row["thread"])  # another process's run, as far as it knows
    try:
        second = run_echo("owned", 2, 200, env=cli_env)
    finally:
        holder.close()
    assert second.returncode == 2
    assert "being run by another process" in one_error_line(second.stderr)
    assert store.get_run(row["thread"])["spec"] == spec_before  # type: ignore[index]
