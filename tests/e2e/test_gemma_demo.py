"""The default demo's real model: Gemma 3 270M converted from the packaged GGUF (minutes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.test_cli import ROOT, sandloop

pytestmark = pytest.mark.slow


def test_gemma_trio_demo_runs_offline(cli_env: dict[str, str], home: Path) -> None:
    network = ROOT / "examples" / "networks" / "gemma-trio.yaml"
    args = ["run", str(network), "--genesis", "a red balloon", "--seed", "7", "--max-steps", "3"]
    done = sandloop(*args, "--json", env=cli_env, timeout=900)
    assert done.returncode == 0, done.stderr
    steps = json.loads(done.stdout)["steps"]
    assert [s["model"] for s in steps] == ["local:gemma-3-270m"] * 3
    assert all(s["status"] == "ok" and len(s["output"].split()) >= 2 for s in steps)
    assert (home / "models" / "gemma-3-270m" / "sandloop-converted.txt").is_file()
    # the same command again finds the run finished (and reuses the converted folder)
    again = sandloop(*args, "--json", "--home", str(home), env=cli_env, timeout=900)
    assert json.loads(again.stdout)["already_finished"]
