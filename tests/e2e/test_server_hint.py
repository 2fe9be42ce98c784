"""Issue 37, item 16: a newcomer's first loop sat at step 0 for seconds while a temporary
Prefect server started, and nothing said why or how to spare it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.test_cli import ECHO, sandloop

HINT = "no `sandloop server` is up, so each command starts a temporary Prefect server"


@pytest.mark.slow  # a temporary Prefect server starts
def test_the_first_loop_without_a_server_suggests_one_once(
    cli_env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from sandloop import server
    from sandloop.cli.common import suggest_a_server_once

    state = tmp_path / "server"  # no server there, and never hinted
    env = {k: v for k, v in cli_env.items() if k != "PREFECT_API_URL"}
    env["SANDLOOP_SERVER_DIR"] = str(state)

    wrong = sandloop("run", str(tmp_path / "missing.yaml"), "--genesis", "x", env=env)
    assert wrong.returncode == 2 and wrong.stderr.count("\n") == 1, wrong.stderr
    assert wrong.stderr.startswith("error: ") and not (state / server.HINTED_FILE).exists()

    args = ("--genesis", "a kite", "--seed", "1", "--max-steps", "2")
    ran = sandloop("run", str(ECHO), *args, env=env)
    assert ran.returncode == 0, ran.stderr
    assert HINT in " ".join(ran.stderr.split()) and (state / server.HINTED_FILE).exists()

    monkeypatch.setenv("SANDLOOP_SERVER_DIR", str(state))
    capsys.readouterr()
    suggest_a_server_once()  # said once: the next command says nothing
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("SANDLOOP_SERVER_DIR", str(tmp_path / "fresh"))
    suggest_a_server_once()
    assert HINT in " ".join(capsys.readouterr().err.split())
