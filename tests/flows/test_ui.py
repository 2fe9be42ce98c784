"""What a run shows in the Prefect UI: names, tags, artifacts, and failures as state messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sandloop import api
from sandloop.loops.dialogue.spec import DialogueSpec
from sandloop.loops.network.spec import RunSpec

pytestmark = pytest.mark.usefixtures("prefect_api_url")


def run_spec(models: list[Any], steps: int = 4) -> RunSpec:
    return RunSpec.model_validate(
        {
            "network": {"name": "ui", "models": models},
            "genesis": "a red balloon",
            "seed": 1,
            "stop": {"max_steps": steps, "stop_on_repeat": False},
        }
    )


def flow_run_and_artifacts(flow_run_id: str, prefix: str) -> tuple[Any, dict[str, Any]]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(flow_run_id)
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(like_=prefix))
        )
    return flow_run, {a.key: a for a in artifacts}


def test_a_network_run_is_named_tagged_and_has_its_artifacts(home: Path) -> None:
    summary = api.run_network(run_spec(["dummy:text-to-image", "dummy:image-to-text"]), home)
    thread = summary.thread
    flow_run, artifacts = flow_run_and_artifacts(summary.flow_run_id, f"network-{thread[:12]}")
    assert flow_run.name == f"ui · thread {thread[:6]} · steps 0–3"
    assert {f"thread:{thread[:12]}", "sandloop:network"} <= set(flow_run.tags)
    key = f"network-{thread[:12]}"
    assert {f"{key}-progress", f"{key}-steps", f"{key}-page", f"{key}-data"} <= set(artifacts)
    assert artifacts[f"{key}-progress"].data == 100.0
    steps_table = artifacts[f"{key}-steps"].data
    assert "dummy:image-to-text" in str(steps_table) and "ok" in str(steps_table)
    page = str(artifacts[f"{key}-page"].data)
    assert page.count("![step") == 2 and "file://" in page
    link = str(artifacts[f"{key}-data"].data)  # stored as [text](link)
    assert f"sandloop show {thread[:8]}" in link and link.endswith("/home/akashic)")


def test_a_speech_runs_page_links_each_sound_with_its_duration(home: Path) -> None:
    models = ["dummy:text", "dummy:text-to-speech", "dummy:speech-to-text"]
    summary = api.run_network(run_spec(models, steps=3), home)
    key = f"network-{summary.thread[:12]}"
    _, artifacts = flow_run_and_artifacts(summary.flow_run_id, key)
    page = str(artifacts[f"{key}-page"].data)
    assert "**1 · dummy:text-to-speech**: [audio 1.00 s at 16000 Hz](file://" in page
    assert "<audio" in str(artifacts[f"{key}-steps"].data)


def test_a_failed_run_ends_its_flow_run_failed_with_the_step_and_error(home: Path) -> None:
    failing = {"model": "dummy:text", "params": {"fail_times": 99, "fail_with": "auth"}}
    summary = api.run_network(run_spec(["dummy:text", failing], steps=4), home)
    assert summary.status == "failed" and summary.steps_total == 1
    flow_run, _ = flow_run_and_artifacts(summary.flow_run_id, "none")
    assert flow_run.state is not None and flow_run.state.is_failed()
    assert flow_run.state.message == f"step 1: {summary.error}"
    assert "AuthError" in flow_run.state.message


def test_a_dialogue_publishes_its_conversation(home: Path) -> None:
    spec = DialogueSpec.model_validate(
        {
            "name": "talk",
            "question": "Why loops?",
            "actors": [
                {"name": "A", "model": "dummy:text", "params": {"script": ["Because."]}},
                {"name": "B", "model": "dummy:text", "params": {"script": ["Why not."]}},
            ],
            "stop": {"max_turns": 2},
        }
    )
    summary = api.run_dialogue(spec, seed=1, home=home)
    steps = api.open_store(home).steps(summary.thread)
    key = f"dialogue-{summary.thread[:12]}"
    flow_run, artifacts = flow_run_and_artifacts(steps["flow_run_id"].iloc[0], key)
    assert flow_run.name == f"talk · thread {summary.thread[:6]} · turns 0–1"
    page = str(artifacts[f"{key}-page"].data)
    assert "# Why loops?" in page and "**0 · A**" in page and "Why not." in page


def test_a_recipe_that_never_validates_fails_its_flow_run_with_its_rounds(
    home: Path, tmp_path: Path
) -> None:
    import yaml

    recipe = tmp_path / "phase.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "name": "phase",
                "version": "1",
                "template": "Classify: {{ input }}",
                "model": "dummy:text",
                "params": {"script": ["never json"]},
                "output": {"type": "object", "required": ["phase"]},
                "refine": {"max_rounds": 1},
            }
        )
    )
    result = api.run_recipe(str(recipe), "pip install", seed=1, home=home)
    assert result.status == "gave_up"
    run = api.open_store(home).get_run(result.thread)
    assert run is not None
    key = f"recipe-{result.thread[:12]}"
    flow_run, artifacts = flow_run_and_artifacts(run["flow_run_id"], key)
    assert flow_run.state is not None and flow_run.state.is_failed()
    assert flow_run.state.message == result.error
    assert flow_run.name == f"phase v1 · thread {result.thread[:6]} · failed"
    assert "sandloop:recipe" in flow_run.tags
    rows = artifacts[f"{key}-calls"].data
    assert str(rows).count("phase v1") == 4  # generate, critic, revise, critic
    assert "never validated" in str(artifacts[f"{key}-page"].data)
