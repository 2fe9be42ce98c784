"""The llama.cpp demo network as a user runs it (`make demo` with the llamacpp extra): a real
subprocess, the session's Prefect server, Gemma 3 270M from its PyPI package. Re-running it in
another home writes the same text, and llama.cpp's own log lines never reach the terminal."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.e2e.test_cli import ROOT, sandloop

TRIO = str(ROOT / "examples" / "networks" / "gemma-trio-llamacpp.yaml")

pytestmark = pytest.mark.llamacpp


def test_the_llamacpp_demo_runs_and_repeats_in_another_home(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    if not os.environ.get("SANDLOOP_REQUIRE_LLAMACPP"):
        pytest.importorskip("llama_cpp", reason="the llamacpp extra: make setup-llamacpp")
    texts = []
    for home in (tmp_path / "a", tmp_path / "b"):
        env = {**cli_env, "SANDLOOP_HOME": str(home)}
        args = ("--genesis", "a red balloon", "--seed", "7", "--max-steps", "3")
        ran = sandloop("run", TRIO, *args, "--json", env=env)
        assert ran.returncode == 0, ran.stderr
        assert "llama_" not in ran.stderr and "ggml" not in ran.stderr, ran.stderr
        steps = json.loads(ran.stdout)["steps"]
        assert [s["model"] for s in steps] == ["llamacpp:gemma-3-270m"] * 3
        assert all(len(s["output"].split()) >= 2 for s in steps), steps
        texts.append([s["output"] for s in steps])
    assert texts[0] == texts[1]
