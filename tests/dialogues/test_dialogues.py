"""Socratic dialogues: turn order, each actor's view, the temperature schedule, and the stops
(max turns, sentinel, judge, repetition), with scripted dummies, an OpenAI-compatible server and
a real tiny model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from sandloop import api
from sandloop.loops.dialogue import engine
from sandloop.loops.dialogue.spec import DialogueSpec, load_dialogue
from sandloop.loops.spec_files import SpecError
from sandloop.models.registry import load_catalog
from tests import openai_server

CATALOG = load_catalog(None)  # the built-in models


def dialogue(**changes: Any) -> DialogueSpec:
    base: dict[str, Any] = {
        "name": "theaetetus",
        "question": "What is knowledge?",
        "actors": [
            {
                "name": "Socrates",
                "role": "You are {{ name }}; question {{ others | join(', ') }}.",
                "model": "dummy:text",
                "params": {"script": ["Is it perception?", "Is it true belief?", "And now?"]},
            },
            {
                "name": "Theaetetus",
                "model": "dummy:text",
                "params": {"script": ["Perhaps.", "It may be.", "I cannot say."]},
            },
        ],
        "temperature": {"start": 0.2, "step": 0.25, "max": 0.9},
        "stop": {"max_turns": 4},
    }
    return DialogueSpec.model_validate({**base, **changes})


def test_each_actor_sees_its_own_turns_as_assistant() -> None:
    spec = dialogue()
    turns = [
        engine.Turn(0, "Socrates", "Is it perception?", 0.2),
        engine.Turn(1, "Theaetetus", "Perhaps.", 0.45),
    ]
    assert engine.view_for(spec, "Socrates", turns) == [
        {"role": "system", "content": "You are Socrates; question Theaetetus."},
        {"role": "user", "content": "What is knowledge?"},
        {"role": "assistant", "content": "Is it perception?"},
        {"role": "user", "content": "Theaetetus: Perhaps."},
    ]
    theaetetus = engine.view_for(spec, "Theaetetus", turns)
    assert theaetetus == [
        {"role": "user", "content": "What is knowledge?\n\nSocrates: Is it perception?"},
        {"role": "assistant", "content": "Perhaps."},
    ]
    assert engine.transcript(theaetetus, "Theaetetus").endswith(
        "Theaetetus: Perhaps.\n\nTheaetetus:"
    )


def test_the_temperature_rises_per_turn_up_to_its_max() -> None:
    schedule = dialogue().temperature
    assert [schedule.at(t) for t in range(5)] == [0.2, 0.45, 0.7, 0.9, 0.9]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"turn_order": ["Socrates", "Glaucon"]}, "turn_order: 'Glaucon' is not an actor"),
        ({"actors": [{"name": "Socrates"}]}, "actors.0.model: Field required"),
        ({"actors": [{"name": "S", "model": "dummy:txet"}]}, "did you mean 'dummy:text'"),
        ({"actors": [{"name": "S", "model": "dummy:text", "role": "{{ mood }}"}]}, "uses mood"),
    ],
)
def test_bad_dialogue_specs_name_the_field(tmp_path: Path, changes: dict, message: str) -> None:
    path = tmp_path / "d.yaml"
    actors = [{"name": "Socrates", "model": "dummy:text"}]
    path.write_text(yaml.safe_dump({"question": "q", "actors": actors, **changes}))
    with pytest.raises(SpecError, match=message) as info:
        load_dialogue(path, CATALOG)
    assert "d.yaml" in str(info.value)


@pytest.mark.usefixtures("prefect_api_url")
def test_turns_alternate_with_the_scheduled_temperature(home: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, TaskRunFilter

    summary = api.run_dialogue(dialogue(), seed=1, home=home)
    assert (summary.status, summary.stop_reason, summary.turns) == (
        "completed",
        "max_turns",
        4,
    )
    messages = api.dialogue_messages(summary.thread, home)
    assert messages["actor"].tolist() == ["Socrates", "Theaetetus"] * 2
    assert messages["content"].tolist() == [
        "Is it perception?",
        "Perhaps.",
        "Is it true belief?",
        "It may be.",
    ]
    assert messages["temperature"].tolist() == [0.2, 0.45, 0.7, 0.9]
    steps = api.open_store(home).steps(summary.thread).sort_values("step")
    assert [json.loads(p)["temperature"] for p in steps["params"]] == [0.2, 0.45, 0.7, 0.9]
    assert set(steps["kind"]) == {"dialogue"}
    with get_client(sync_client=True) as client:
        task_runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[steps["flow_run_id"].iloc[0]])),
            task_run_filter=TaskRunFilter(),
        )
    assert sorted(t.name for t in task_runs) == [
        "turn 0 · Socrates",
        "turn 1 · Theaetetus",
        "turn 2 · Socrates",
        "turn 3 · Theaetetus",
    ]
    again = api.run_dialogue(dialogue(), seed=1, home=home)  # finished: nothing new
    assert again.turns == 4 and len(api.open_store(home).steps(summary.thread)) == 4


@pytest.mark.usefixtures("prefect_api_url")
def test_a_sentinel_ends_the_dialogue(home: Path) -> None:
    spec = dialogue(
        actors=[
            {
                "name": "A",
                "model": "dummy:text",
                "params": {"script": ["Hm.", "@FINAL ANSWER: 42"]},
            },
            {"name": "B", "model": "dummy:text", "params": {"script": ["Go on."]}},
        ],
        stop={"max_turns": 10},
    )
    summary = api.run_dialogue(spec, seed=1, home=home)
    assert (summary.stop_reason, summary.turns) == ("sentinel", 3)


@pytest.mark.usefixtures("prefect_api_url")
def test_the_judge_stops_the_dialogue_and_its_verdicts_are_recorded(
    home: Path, tmp_path: Path
) -> None:
    judge = tmp_path / "judge.yaml"
    judge.write_text(
        yaml.safe_dump(
            {
                "name": "my-judge",
                "version": "1",
                "template": "Judge: {{ input }}",
                "model": "dummy:text",
                "params": {"script": ['{"verdict": "stop", "score": 8}']},
                "output": {"type": "object", "required": ["verdict"]},
            }
        )
    )
    spec = dialogue(judge={"recipe": str(judge), "every": 2}, stop={"max_turns": 10})
    summary = api.run_dialogue(spec, seed=1, home=home)
    assert (summary.stop_reason, summary.turns) == ("judge", 2)
    messages = api.dialogue_messages(summary.thread, home)
    assert messages["verdict"].isna().iloc[0]
    assert json.loads(messages["verdict"].iloc[1]) == {"verdict": "stop", "score": 8}


@pytest.mark.usefixtures("prefect_api_url")
def test_a_repeated_turn_ends_the_dialogue(home: Path) -> None:
    spec = dialogue(
        actors=[
            {"name": "A", "model": "dummy:text", "params": {"script": ["Same thing."]}},
            {"name": "B", "model": "dummy:text", "params": {"script": ["Other."]}},
        ],
        stop={"max_turns": 10, "sentinel": None},
    )
    summary = api.run_dialogue(spec, seed=1, home=home)
    assert (summary.stop_reason, summary.turns) == ("repeat", 3)


@pytest.mark.usefixtures("prefect_api_url")
def test_chat_models_get_the_conversation_from_their_side(
    home: Path, endpoint: tuple[openai_server.FakeOpenAI, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    state, url = endpoint
    monkeypatch.setenv("SANDLOOP_OPENAI_BASE_URL", url)
    spec = dialogue(
        actors=[
            {
                "name": "Socrates",
                "role": "Ask.",
                "model": "dummy:text",
                "params": {"script": ["Why?"]},
            },
            {"name": "Meno", "model": "openai:chat"},
        ],
        stop={"max_turns": 2},
    )
    summary = api.run_dialogue(spec, seed=1, home=home)
    assert summary.status == "completed"
    sent = next(r for r in state.requests if r["path"] == "/v1/chat/completions")["body"]
    assert sent["messages"] == [{"role": "user", "content": "What is knowledge?\n\nSocrates: Why?"}]
    assert sent["temperature"] == 0.45


@pytest.mark.usefixtures("prefect_api_url")
def test_a_dialogue_between_real_local_models(home: Path, tiny_gpt2: Path) -> None:
    actor = {"model": f"local:{tiny_gpt2}", "params": {"max_new_tokens": 6}}
    spec = dialogue(
        actors=[{"name": "A", **actor}, {"name": "B", **actor}],
        stop={"max_turns": 2, "sentinel": None, "stop_on_repeat": False},
    )
    summary = api.run_dialogue(spec, seed=4, home=home)
    messages = api.dialogue_messages(summary.thread, home)
    assert summary.status == "completed" and len(messages) == 2
    assert all(content.strip() for content in messages["content"])
