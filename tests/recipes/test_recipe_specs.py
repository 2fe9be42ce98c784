"""Recipe specs, templates and output checks: everything decided before a model runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandloop.loops.recipe import deck
from sandloop.loops.recipe.context import prompt_for, resolve_context
from sandloop.loops.recipe.files import builtin_names
from sandloop.loops.recipe.render import TemplateError, check_output, extract_json, render
from sandloop.loops.recipe.spec import RecipeSpec, load_recipe
from sandloop.loops.spec_files import SpecError
from sandloop.models.registry import load_catalog

BASE = {"name": "r", "version": "1", "template": "Say {{ input }}", "model": "dummy:text"}


def recipe(**changes: object) -> RecipeSpec:
    return RecipeSpec.model_validate({**BASE, **changes})


def test_every_builtin_recipe_loads(tmp_path: Path) -> None:
    assert {"summarize", "classify-phase", "critique", "oblique", "judge-dialogue"} <= set(
        builtin_names()
    )
    for name in builtin_names():
        assert load_recipe(name, load_catalog(None, tmp_path)).name == name


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"template": "Say {{ inptu }}"}, "template: uses inptu, which context does not define"),
        ({"template": "Say {{ input "}, "template: does not parse"),
        ({"output": {"type": "objekt"}}, "output: not a valid JSON schema"),
        ({"model": None}, "give exactly one of model:"),
        ({"route": "fast"}, "give exactly one of model:"),
        ({"model": "dummy:text-to-image"}, "is not text→text"),
        ({"params": {"temprature": 1}}, "bad params for .*: temprature"),
        ({"refine": {"critic": "{{ nonsense }}"}}, "refine.critic: uses nonsense"),
        ({"context": {"a": {"file": "x", "deck": "builtin"}}}, "a slot takes one source"),
    ],
)
def test_bad_recipes_name_the_field(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        recipe(**changes)


def test_a_bad_recipe_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("version: '1'\ntemplate: '{{ missing }}'\nmodel: dummy:text\n")
    with pytest.raises(SpecError, match=r"bad.yaml: template: uses missing"):
        load_recipe(str(path), load_catalog(None, tmp_path))
    with pytest.raises(SpecError, match="did you mean 'summarize'"):
        load_recipe("sumarize", load_catalog(None, tmp_path))


def test_a_model_override_keeps_only_the_params_it_accepts(tmp_path: Path) -> None:
    spec = load_recipe("summarize", load_catalog(None, tmp_path), model="dummy:text")
    assert spec.model == "dummy:text" and spec.params == {"temperature": 0.3}


def test_slots_fill_from_literals_overrides_files_decks_and_earlier_stages(tmp_path: Path) -> None:
    (tmp_path / "style.md").write_text("terse")
    (tmp_path / "deck.txt").write_text("# mine\nOnly one card.\n")
    spec = recipe(
        template="{{ input }}|{{ n }}|{{ style }}|{{ card }}|{{ prior }}",
        context={
            "n": 2,
            "style": {"file": str(tmp_path / "style.md")},
            "card": {"deck": str(tmp_path / "deck.txt")},
            "prior": {"recipe": "summarize"},
        },
    )
    values = resolve_context(spec, "x", {"n": "3"}, seed=1, previous={"summarize": "short"})
    assert prompt_for(spec, values) == "x|3|terse|Only one card.|short"
    with pytest.raises(SpecError, match="no slot m"):
        resolve_context(spec, "x", {"m": 1}, seed=1, previous={"summarize": "s"})
    with pytest.raises(SpecError, match="earlier stage"):
        resolve_context(spec, "x", {}, seed=1)


def test_the_deck_draw_is_seeded_and_ours() -> None:
    assert deck.draw(7) == deck.draw(7)
    assert len({deck.draw(s) for s in range(50)}) > 5
    assert all(card.endswith((".", "?", ":")) for card in deck.DECK)


def test_json_is_found_in_fences_and_prose_and_checked() -> None:
    assert extract_json('Sure! ```json\n{"a": 1}\n```') == {"a": 1}
    assert extract_json('The answer is {"a": [1, 2]} I think') == {"a": [1, 2]}
    schema = {"type": "object", "properties": {"phase": {"enum": ["use"]}}, "required": ["phase"]}
    assert check_output('{"phase": "use"}', schema) == ({"phase": "use"}, [])
    assert check_output('{"phase": "fly"}', schema)[1] == ["phase: 'fly' is not one of ['use']"]
    assert check_output("no json", schema) == (None, ["no JSON found in the output"])
    assert check_output("  ", None) == (None, ["the output is empty"])


def test_an_undefined_variable_at_render_time_names_it() -> None:
    with pytest.raises(TemplateError, match="'x' is undefined"):
        render("{{ x }}", {})
