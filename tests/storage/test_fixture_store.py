"""A store written by an older sandloop (tests/fixtures/store_v1, built before the loop kinds
shared one driver) opens, resumes, and keeps its keys: a change to the driver, the row builder or
the key scheme that would orphan a user's record fails here."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from sandloop import api
from sandloop.loops.dialogue.spec import load_dialogue
from sandloop.models.registry import load_catalog

CATALOG = load_catalog(None)  # the built-in models

pytestmark = pytest.mark.usefixtures("prefect_api_url")

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests/fixtures/store_v1"
EXPECTED: dict[str, Any] = json.loads((FIXTURE / "expected.json").read_text())


@pytest.fixture
def old_home(tmp_path: Path) -> Path:
    home = tmp_path / "old-home"
    shutil.copytree(FIXTURE / "home", home)
    return home


def keys_of(home: Path, thread: str) -> list[str]:
    steps = api.open_store(home, readonly=True).steps(thread).sort_values("step")
    return [str(key) for key in steps["key"]]


def test_the_old_store_opens_with_every_run_and_key(old_home: Path) -> None:
    runs = api.list_runs(old_home)
    assert set(runs["thread"]) == set(EXPECTED["threads"].values())
    assert set(runs["kind"]) == {"network", "dialogue", "recipe"}
    for name, thread in EXPECTED["threads"].items():
        assert keys_of(old_home, thread) == EXPECTED["keys"][name], name
    images = api.run_steps(EXPECTED["threads"]["images"][:8], old_home)
    blobs = api.open_store(old_home, readonly=True).blobs
    assert blobs.get(str(images["output"].iloc[0]))[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("name", "network", "genesis", "seed", "repeats"),
    [
        ("network", "echo.yaml", "a red balloon", 7, True),
        ("images", "balloon.yaml", "a lighthouse", 3, False),
    ],
)
def test_an_old_network_run_resumes_as_if_never_interrupted(
    old_home: Path, tmp_path: Path, name: str, network: str, genesis: str, seed: int, repeats: bool
) -> None:
    stop = {"max_steps": 7, "stop_on_repeat": repeats}
    spec = api.load_run_spec(
        ROOT / "examples/networks" / network, genesis=genesis, seed=seed, stop=stop
    )
    resumed = api.run_network(spec, old_home)
    assert resumed.thread == EXPECTED["threads"][name]
    assert resumed.steps_this_session == 7 - len(EXPECTED["keys"][name])
    fresh = api.run_network(spec, tmp_path / "fresh-home")
    kept = keys_of(old_home, resumed.thread)
    assert kept[: len(EXPECTED["keys"][name])] == EXPECTED["keys"][name]
    assert kept == keys_of(tmp_path / "fresh-home", fresh.thread)
    old = api.run_steps(resumed.thread, old_home)
    new = api.run_steps(fresh.thread, tmp_path / "fresh-home")
    assert old["output"].tolist() == new["output"].tolist()
    assert old["parent_key"].iloc[1:].tolist() == old["key"].iloc[:-1].tolist()


def test_an_old_dialogue_and_recipe_are_finished_and_made_again_with_the_same_keys(
    old_home: Path, tmp_path: Path
) -> None:
    dialogue = load_dialogue(ROOT / "examples/dialogues/scripted.yaml", CATALOG)
    dialogue = dialogue.model_copy(
        update={"stop": dialogue.stop.model_copy(update={"max_turns": 3})}
    )
    again = api.run_dialogue(dialogue, seed=5, home=old_home)
    fresh = api.run_dialogue(dialogue, seed=5, home=tmp_path / "fresh-home")
    assert again.thread == fresh.thread == EXPECTED["threads"]["dialogue"]
    assert again.turns == fresh.turns == 3
    assert keys_of(old_home, again.thread) == EXPECTED["keys"]["dialogue"]
    assert keys_of(tmp_path / "fresh-home", fresh.thread) == EXPECTED["keys"]["dialogue"]
    messages = api.dialogue_messages(again.thread[:8], old_home)
    assert messages["turn"].tolist() == [0, 1, 2]

    recipe = api.run_recipe(str(FIXTURE / "phase.yaml"), "pip install foo", seed=1, home=old_home)
    assert recipe.thread == EXPECTED["threads"]["recipe"]
    assert recipe.cached and recipe.parsed == {"phase": "install"}
    assert keys_of(old_home, recipe.thread) == EXPECTED["keys"]["recipe"]
    made = api.run_recipe(
        str(FIXTURE / "phase.yaml"), "pip install foo", seed=1, home=tmp_path / "r"
    )
    assert not made.cached and keys_of(tmp_path / "r", made.thread) == EXPECTED["keys"]["recipe"]
