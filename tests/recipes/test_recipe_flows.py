"""Recipes as Prefect flows with dummy models that answer from a script, and a real tiny
model: refine converging and giving up, judged acceptance, cache hits, a three-stage pipeline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from sandloop import api

pytestmark = pytest.mark.usefixtures("prefect_api_url")

PHASE_SCHEMA = {
    "type": "object",
    "properties": {"phase": {"enum": ["prepare", "install", "use"]}},
    "required": ["phase"],
}


def write_recipe(folder: Path, name: str, script: list[str], **fields: Any) -> Path:
    spec = {
        "name": name,
        "version": "2",
        "template": "Classify: {{ input }}",
        "model": "dummy:text",
        "params": {"script": script},
        **fields,
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def calls(home: Path, thread: str) -> list[dict[str, Any]]:
    steps = api.open_store(home).steps(thread).sort_values("step")
    return [{**row, "metadata": json.loads(row["metadata"])} for row in steps.to_dict("records")]


def test_refine_revises_until_the_output_validates(home: Path, tmp_path: Path) -> None:
    path = write_recipe(
        tmp_path,
        "phase",
        ["it is installing", "No JSON. score: 2", '{"phase": "install"}'],
        output=PHASE_SCHEMA,
        refine={"max_rounds": 3},
    )
    result = api.run_recipe(str(path), "pip install foo", seed=1, home=home)
    assert result.status == "valid" and result.parsed == {"phase": "install"}
    assert result.error is None and result.calls == 3
    recorded = calls(home, result.thread)
    roles = [(c["facet"], c["metadata"]["round"]) for c in recorded]
    assert roles == [("dummy:text#generate", 0), ("dummy:text#critic", 0), ("dummy:text#revise", 1)]
    first, critic, revised = (c["metadata"] for c in recorded)
    assert first["validation_errors"] == ["no JSON found in the output"] and not first["final"]
    assert critic["score"] == 2.0
    assert revised["final"] and revised["parsed"] == {"phase": "install"}
    assert {c["metadata"]["promptName"] for c in recorded} == {"phase"}
    assert {c["metadata"]["promptVersion"] for c in recorded} == {"2"}
    assert recorded[0]["input"] == "Classify: pip install foo"
    assert "No JSON. score: 2" in recorded[2]["input"]  # the critique reached the reviser
    run = api.open_store(home).get_run(result.thread)
    assert run is not None and run["kind"] == "recipe" and run["status"] == "completed"


def test_refine_gives_up_after_max_rounds_and_records_why(home: Path, tmp_path: Path) -> None:
    path = write_recipe(
        tmp_path, "stubborn", ["never json"], output=PHASE_SCHEMA, refine={"max_rounds": 2}
    )
    result = api.run_recipe(str(path), "x", seed=1, home=home)
    assert result.status == "gave_up"
    assert "never validated (2 refine rounds): no JSON found" in result.error
    assert len(calls(home, result.thread)) == 6  # answer, then (critic, revise) ×2, critic
    run = api.open_store(home).get_run(result.thread)
    assert run is not None and run["status"] == "failed" and run["stop_reason"] == "gave_up"
    again = api.run_recipe(str(path), "x", seed=1, home=home)  # recorded: no new calls
    assert again.status == "gave_up" and len(calls(home, result.thread)) == 6


def test_a_judge_threshold_accepts_only_a_good_enough_answer(home: Path, tmp_path: Path) -> None:
    path = write_recipe(
        tmp_path,
        "judged",
        ["draft", '{"score": 4}', "better draft", '{"score": 9}'],
        refine={"max_rounds": 3, "judge_threshold": 8},
    )
    result = api.run_recipe(str(path), "x", seed=1, home=home)
    assert (result.status, result.output, result.score) == ("judged", "better draft", 9.0)


def test_the_same_input_version_and_seed_is_a_cache_hit(home: Path, tmp_path: Path) -> None:
    path = write_recipe(tmp_path, "once", ["an answer"])
    first = api.run_recipe(str(path), "same input", seed=5, home=home)
    second = api.run_recipe(str(path), "same input", seed=5, home=home)
    assert not first.cached and second.cached
    assert second.output == first.output and len(calls(home, first.thread)) == 1
    other_seed = api.run_recipe(str(path), "same input", seed=6, home=home)
    assert not other_seed.cached and other_seed.thread != first.thread


def test_a_pipeline_of_three_recipes_passes_each_output_on(home: Path, tmp_path: Path) -> None:
    write_recipe(tmp_path, "shout", ["LOUD"], template="Shout: {{ input }}")
    write_recipe(
        tmp_path,
        "count",
        ['{"words": 1}'],
        template="Count: {{ input }}",
        output={"type": "object", "required": ["words"]},
    )
    write_recipe(
        tmp_path,
        "recap",
        ["recap done"],
        template="Recap {{ input }} after {{ loud }}",
        context={"loud": {"recipe": "shout"}},
    )
    pipeline = tmp_path / "pipe.yaml"
    stages = [{"recipe": str(tmp_path / f"{n}.yaml")} for n in ("shout", "count", "recap")]
    pipeline.write_text(yaml.safe_dump({"name": "pipe", "stages": stages}))
    result = api.run_pipeline(pipeline, "hello", seed=1, home=home)
    assert result.error is None and result.output == "recap done"
    shout, count, recap = result.stages
    prompts = [calls(home, s.thread)[0]["input"] for s in (shout, count, recap)]
    assert prompts == ["Shout: hello", "Count: LOUD", 'Recap {"words":1} after LOUD']


def test_the_oblique_recipe_records_its_card(home: Path) -> None:
    from sandloop.loops.recipe import deck

    result = api.run_recipe("oblique", "a red balloon", seed=3, model="dummy:text", home=home)
    run = api.open_store(home).get_run(result.thread)
    assert run is not None and json.loads(run["genesis"])["card"] == deck.draw(3)
    assert deck.draw(3) in calls(home, result.thread)[0]["input"]


def test_a_recipe_on_a_real_local_model(home: Path, tiny_gpt2: Path) -> None:
    result = api.run_recipe(
        "summarize",
        "def parse(line): return line.split()",
        seed=2,
        model=f"local:{tiny_gpt2}",
        home=home,
    )
    assert result.status == "valid" and result.output.strip()
    recorded = calls(home, result.thread)
    assert recorded[0]["metadata"]["usage"]["output_tokens"] > 0


def test_a_recipe_is_a_node_of_a_network(home: Path, tmp_path: Path) -> None:
    from sandloop.loops.network.spec import RunSpec

    path = write_recipe(
        tmp_path,
        "tidy",
        ["messy", "score: 1", '{"tidy": true}'],
        output={"type": "object", "required": ["tidy"]},
        refine={"max_rounds": 1},
    )
    run = RunSpec.model_validate(
        {
            "network": {"name": "with-recipe", "models": ["dummy:text", f"recipe:{path}"]},
            "genesis": "start",
            "seed": 1,
            "stop": {"max_steps": 2},
        }
    )
    summary = api.run_network(run, home)
    steps = api.run_steps(summary.thread, home).sort_values("step")
    assert summary.status == "completed"
    assert steps["output"].iloc[1] == '{"tidy":true}'
    recipe_meta = json.loads(steps["metadata"].iloc[1])["recipe"]
    assert recipe_meta == {
        "promptName": "tidy",
        "promptVersion": "2",
        "status": "valid",
        "calls": 3,
    }


def test_a_recipe_written_in_python_with_a_pydantic_output(home: Path) -> None:
    from pydantic import BaseModel

    from sandloop.loops.recipe.spec import RecipeSpec

    class Verdict(BaseModel):
        ok: bool

    spec = RecipeSpec(
        name="py-check",
        version="1",
        template="Check {{ input }}",
        model="dummy:text",
        params={"script": ['{"ok": "maybe"}', "score 1", '{"ok": true}']},
        output=Verdict,  # type: ignore[arg-type]
        refine={"max_rounds": 1},  # type: ignore[arg-type]
    )
    result = api.run_recipe(spec, "this", seed=1, home=home)
    assert result.parsed == {"ok": True} and result.calls == 3
    first = calls(home, result.thread)[0]["metadata"]
    assert first["validation_errors"] == ["ok: 'maybe' is not of type 'boolean'"]


def test_a_search_slot_brings_in_recorded_outputs(home: Path, tmp_path: Path) -> None:
    from sandloop.loops.network.spec import RunSpec

    network = RunSpec.model_validate(
        {
            "network": {"name": "words", "models": ["dummy:text"]},
            "genesis": "g",
            "seed": 1,
            "stop": {"max_steps": 3},
        }
    )
    summary = api.run_network(network, home)  # embedded by the recipe's search (hashing)
    outputs = set(api.run_steps(summary.thread, home)["output"])
    path = write_recipe(
        tmp_path,
        "recall",
        ["done"],
        template="{{ input }} | {{ related }}",
        context={"related": {"search": "{{ input }}", "k": 2}},
    )
    some_output = sorted(outputs)[0]
    result = api.run_recipe(str(path), some_output, seed=1, home=home)
    prompt = calls(home, result.thread)[0]["input"]
    related = prompt.split(" | ", 1)[1].splitlines()
    assert len(related) == 2 and set(related) <= outputs and some_output in related
