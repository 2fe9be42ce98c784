"""`sandloop session classify`, in-process on the session's Prefect server: a run the recipe
cannot label is an exit 1 that says how many, and nothing to label is said, not silent."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from sandloop import api
from sandloop.cli import app
from sandloop.loops.network.spec import RunSpec


def test_session_classify_fails_on_unlabelled_runs_and_says_when_nothing_is_left(
    home: Path, prefect_api_url: str
) -> None:
    session = str(api.start_session("classify me", home)["id"])
    spec = RunSpec.model_validate(
        {
            "network": {"name": "s", "models": ["dummy:text"]},
            "genesis": "a kite",
            "seed": 1,
            "stop": {"max_steps": 2},
        }
    )
    thread = api.run_network(spec, home, session).thread
    # what prepare_prefect sets by default, given here so that the runner puts it back after
    env = {
        "SANDLOOP_HOME": str(home),
        "PREFECT_API_URL": prefect_api_url,
        "PREFECT_SERVER_LOGGING_LEVEL": "CRITICAL",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    }
    runner = CliRunner()
    # Issue 37, item 18: the dummy model never answers the recipe's JSON; this exited 0.
    failed = runner.invoke(app, ["session", "classify", session, "--model", "dummy:text"], env=env)
    assert failed.exit_code == 1, failed.output
    assert f"{thread[:10]} → unlabelled" in failed.output
    assert "error: 1 run left unlabelled" in failed.output
    assert api.open_store(home, readonly=True).get_run(thread)["phase"] is None

    api.label_run(thread, "debug", home)
    nothing = runner.invoke(app, ["session", "classify", session], env=env)
    assert nothing.exit_code == 0, nothing.output
    assert "nothing to label" in nothing.output and "--overwrite" in nothing.output
