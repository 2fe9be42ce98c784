"""The dialogue, recipe and session commands, run as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.test_cli import ROOT, sandloop

SCRIPTED = ROOT / "examples" / "dialogues" / "scripted.yaml"


@pytest.mark.parametrize(
    "command",
    [
        ("dialogue", "run"),
        ("dialogue", "show"),
        ("recipe", "run"),
        ("recipe", "pipeline"),
        ("recipe", "list"),
        ("recipe", "show"),
        ("session", "start"),
        ("session", "classify"),
    ],
)
def test_loop_commands_have_help(command: tuple[str, str], cli_env: dict[str, str]) -> None:
    helped = sandloop(*command, "--help", env=cli_env)
    assert helped.returncode == 0 and "Usage" in helped.stdout and "--home" in helped.stdout


@pytest.mark.slow  # a dialogue, a recipe and the session commands (~22 s)
def test_a_session_groups_a_dialogue_and_a_recipe(cli_env: dict[str, str]) -> None:
    started = sandloop("session", "start", "try the loops", "--tag", "demo", "--json", env=cli_env)
    session = json.loads(started.stdout)["id"]
    talk = sandloop(
        "dialogue", "run", str(SCRIPTED), "--seed", "1", "--session", session[:6], env=cli_env
    )
    assert talk.returncode == 0, talk.stderr
    assert "completed: sentinel after 5 turns" in talk.stdout
    assert "1 · Answerer" in talk.stderr  # the turns, as they come
    thread = talk.stdout.split("thread ")[-1].strip()
    shown = sandloop("dialogue", "show", thread[:8], env=cli_env)
    assert "Each answer becomes the next question." in shown.stdout
    recipe = sandloop(
        "recipe",
        "run",
        "summarize",
        "--input",
        "one two three",
        "--model",
        "dummy:text",
        "--context",
        "sentences=1",
        "--session",
        session,
        "--json",
        env=cli_env,
    )
    assert recipe.returncode == 0, recipe.stderr
    assert json.loads(recipe.stdout)["status"] == "valid"
    labelled = sandloop("session", "label", thread[:8], "debug", env=cli_env)
    assert labelled.returncode == 0
    listed = json.loads(sandloop("session", "show", session, "--json", env=cli_env).stdout)
    kinds = {r["kind"]: r for r in listed["runs"]}
    assert set(kinds) == {"dialogue", "recipe"} and kinds["dialogue"]["phase"] == "debug"
    assert sandloop("session", "end", session, env=cli_env).returncode == 0
    late = sandloop("recipe", "run", "summarize", "--input", "x", "--session", session, env=cli_env)
    assert late.returncode == 2 and "has ended" in late.stderr


def test_recipe_failures_are_one_line(cli_env: dict[str, str]) -> None:
    never = sandloop(
        "recipe",
        "run",
        "classify-phase",
        "--input",
        "pip install x",
        "--model",
        "dummy:text",
        env=cli_env,
    )
    assert never.returncode == 1
    assert "never validated (2 refine rounds)" in never.stderr and "Traceback" not in never.stderr
    unknown = sandloop("recipe", "run", "sumarize", "--input", "x", env=cli_env)
    assert unknown.returncode == 2 and "did you mean 'summarize'" in unknown.stderr
    bad_slot = sandloop(
        "recipe",
        "run",
        "summarize",
        "--input",
        "x",
        "--context",
        "colour=red",
        "--model",
        "dummy:text",
        env=cli_env,
    )
    assert bad_slot.returncode == 2 and "no slot colour" in bad_slot.stderr
    bad_phase = sandloop("session", "label", "abc", "dance", env=cli_env)
    assert bad_phase.returncode == 2


def test_recipe_list_and_show(cli_env: dict[str, str]) -> None:
    listed = json.loads(sandloop("recipe", "list", "--json", env=cli_env).stdout)
    assert {"summarize", "classify-phase", "critique", "oblique"} <= {r["name"] for r in listed}
    shown = sandloop("recipe", "show", "classify-phase", env=cli_env)
    assert "output schema" in shown.stdout and "install" in shown.stdout


@pytest.mark.slow  # two CLI starts and a run (~10 s)
def test_a_session_id_is_alone_on_stdout_and_show_refuses_the_wrong_kind(
    cli_env: dict[str, str], home: Path
) -> None:
    """Issue 37, items 18 and 19: SID=$(sandloop session start …) is the id; `dialogue show`
    on a network thread printed nothing and exited 0."""
    from sandloop import api

    started = sandloop("session", "start", "probe", env=cli_env)
    assert started.returncode == 0, started.stderr
    assert len(started.stdout.strip().split()) == 1  # the id, nothing else
    assert "started: probe" in started.stderr
    spec = api.run_spec_from(
        {
            "network": {"name": "n", "models": ["dummy:text"]},
            "genesis": "hi",
            "stop": {"max_steps": 1},
        }
    )
    api.run_network(spec, home)
    shown = sandloop("dialogue", "show", api.thread_of(spec)[:8], env=cli_env)
    assert shown.returncode == 2 and shown.stdout == ""
    assert shown.stderr.startswith("error: ") and "is a network run, not a dialogue" in shown.stderr
    assert "Traceback" not in shown.stderr


@pytest.mark.slow  # three runs and two CLI starts (~10 s)
def test_runs_shows_the_newest_and_says_how_many_more(cli_env: dict[str, str], home: Path) -> None:
    """Issue 37, item 17: `runs` listed all 369 runs."""
    from sandloop import api

    threads = []
    for n in range(3):
        spec = api.run_spec_from(
            {
                "network": {"name": "n", "models": ["dummy:text"]},
                "genesis": f"run {n}",
                "stop": {"max_steps": 1},
            }
        )
        threads.append(api.run_network(spec, home).thread)
    listed = sandloop("runs", "--limit", "2", env=cli_env)
    assert listed.returncode == 0, listed.stderr
    assert threads[2][:8] in listed.stdout and threads[1][:8] in listed.stdout
    assert threads[0][:8] not in listed.stdout
    assert "and 1 older; --limit 3 or --all shows them" in listed.stderr
    every = sandloop("runs", "--all", "--json", env=cli_env)
    assert len(json.loads(every.stdout)) == 3


def test_tables_keep_their_key_columns_at_80_columns_and_wide_shows_the_rest(
    cli_env: dict[str, str], home: Path
) -> None:
    """Issue 37, item 17: at 80 columns `runs` dropped its steps and `models` kept only two
    columns of five, squeezed to nothing, and words were split across lines."""
    from sandloop import api

    spec = api.run_spec_from(
        {
            "network": {"name": "a-network-with-a-rather-long-name", "models": ["dummy:text"]},
            "genesis": "a genesis long enough to push every other column off the edge",
            "stop": {"max_steps": 2, "stop_on_repeat": False},
        }
    )
    thread = api.run_network(spec, home).thread
    narrow = {**cli_env, "COLUMNS": "80"}
    runs = sandloop("runs", env=narrow).stdout
    row = next(line for line in runs.splitlines() if thread[:10] in line)
    assert max(len(line) for line in runs.splitlines()) <= 80
    assert row.split()[2:4] == ["completed", "max_steps"] and row.split()[4] == "2"
    assert "genesis" not in runs  # the rest is --wide's
    wide = sandloop("runs", "--wide", env=narrow).stdout
    assert "a genesis long enough" in wide and "network" in wide.split()
    models = sandloop("models", env=narrow).stdout.splitlines()
    listed = {line.split()[0]: line.split()[1] for line in models if line.startswith(" dummy:")}
    assert listed["dummy:speech-to-text"] == "automatic-speech-recognition"
    assert "text → text" in sandloop("models", "--wide", env=narrow).stdout
