"""Limits a models file declares hold across processes, enforced by Prefect's global concurrency
limits on one Prefect server: observed at a local model server that counts the calls it is
answering at once, not by timing."""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.variables import Variable

from sandloop.models.registry import load_catalog
from sandloop.tasks.limits import limit_name
from tests import openai_server

ROOT = Path(__file__).resolve().parents[2]

# Each test runs several `sandloop run` processes for tens of seconds: CI's slow step.
pytestmark = [pytest.mark.slow, pytest.mark.alone]


def start_runs(
    count: int, spec: Path, env: dict[str, str], steps: int
) -> list[subprocess.Popen[str]]:
    return [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sandloop.cli",
                "run",
                str(spec),
                "--genesis",
                f"worker {i} text",
                "--seed",
                str(i),
                "--max-steps",
                str(steps),
                "--no-stop-on-repeat",  # the fake's answers repeat: every step must call
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(count)
    ]


def finish(processes: list[subprocess.Popen[str]]) -> None:
    for process in processes:
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err


def setup_home(home: Path, tmp_path: Path, limits: str) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    (home / "models.yaml").write_text(
        "models:\n  - ref: openai:limited\n    source: gpt-limited\n" + limits
    )
    spec = tmp_path / "limited.yaml"
    spec.write_text("name: limited\nmodels: [openai:limited]\n")
    return spec


def test_max_concurrent_holds_across_processes(
    cli_env: dict[str, str], home: Path, tmp_path: Path
) -> None:
    spec = setup_home(home, tmp_path, "    max_concurrent: 2\n")
    server, state, url = openai_server.start()
    state.chat_delay_s = 0.4
    env = {**cli_env, "SANDLOOP_OPENAI_BASE_URL": url, "OPENAI_API_KEY": "sk-test-limits"}
    try:
        finish(start_runs(4, spec, env, steps=8))
    finally:
        server.shutdown()
    calls = [r for r in state.requests if r["path"] == "/v1/chat/completions"]
    assert len(calls) == 32
    # Four processes wanted four calls at once; the limit let two through, and two it did.
    assert state.max_in_flight == 2
    info = load_catalog(home / "models.yaml", home).models["openai:limited"]
    with get_client(sync_client=True) as client:
        limit = client.read_global_concurrency_limit_by_name(limit_name(info))
    assert limit.limit == 2 and limit.active_slots == 0  # visible in the UI; every slot returned


def test_a_rate_limit_spaces_calls_across_processes(
    cli_env: dict[str, str], home: Path, tmp_path: Path
) -> None:
    spec = setup_home(home, tmp_path, "    rate_limit: {per_minute: 120}\n")
    server, state, url = openai_server.start()
    env = {**cli_env, "SANDLOOP_OPENAI_BASE_URL": url, "OPENAI_API_KEY": "sk-test-limits"}
    try:
        finish(start_runs(2, spec, env, steps=3))
    finally:
        server.shutdown()
    times = sorted(r["at"] for r in state.requests if r["path"] == "/v1/chat/completions")
    assert len(times) == 6
    # 120 a minute is one every 0.5 s, whichever process calls: a lower bound, which a slow
    # machine can only widen.
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 0.4, gaps
    info = load_catalog(home / "models.yaml", home).models["openai:limited"]
    with get_client(sync_client=True) as client:
        limit = client.read_global_concurrency_limit_by_name(limit_name(info, "rate"))
    assert limit.slot_decay_per_second == pytest.approx(2.0)


def test_a_providers_backoff_holds_for_every_process(
    cli_env: dict[str, str], home: Path, tmp_path: Path
) -> None:
    spec = setup_home(home, tmp_path, "    max_concurrent: 4\n")
    server, state, url = openai_server.start()
    state.script = ["429:3"]  # the first call is told to come back in 3 s
    env = {**cli_env, "SANDLOOP_OPENAI_BASE_URL": url, "OPENAI_API_KEY": "sk-test-limits"}
    try:
        first = start_runs(1, spec, env, steps=1)
        deadline = time.monotonic() + 120
        while not any(r.get("status") == 429 for r in state.requests):
            assert time.monotonic() < deadline, "the first run never called the model"
            time.sleep(0.05)
        refused_at = next(r["at"] for r in state.requests if r.get("status") == 429)
        info = load_catalog(home / "models.yaml", home).models["openai:limited"]
        deadline = time.monotonic() + 60
        while Variable.get(limit_name(info, "cooldown"), default=None) is None:
            assert time.monotonic() < deadline, "no cooldown was shared"
            time.sleep(0.05)
        # Another process starts now: it was never refused, yet it waits out the cooldown.
        second = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sandloop.cli",
                "run",
                str(spec),
                "--genesis",
                "another one",
                "--max-steps",
                "1",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        finish([*first, second])
    finally:
        server.shutdown()
    answered = [
        r for r in state.requests if r["path"] == "/v1/chat/completions" and r["status"] == 200
    ]
    assert len(answered) == 2
    assert all(r["at"] >= refused_at + 2.9 for r in answered), (refused_at, answered)
