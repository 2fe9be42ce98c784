"""The model catalog: built-ins, a user's models file, task-qualified refs, clear errors; and
a spec checked against the catalog of the home it names, with nothing global to reset."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sandloop.loops.network.spec import NetworkSpec, load_network
from sandloop.loops.spec_check import validated
from sandloop.loops.spec_files import SpecError
from sandloop.models.registry import (
    RegistryError,
    UnknownModel,
    load_catalog,
    spec_context,
)

lookup = load_catalog(None).lookup  # the built-in catalog's


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_builtin_catalog_models_have_types_tasks_and_costs() -> None:
    flux = lookup("replicate:black-forest-labs/flux-schnell")
    assert (flux.input_type, flux.output_type, flux.task) == ("text", "image", "text-to-image")
    assert flux.cost_usd is not None and flux.cost_usd.estimate({}) == pytest.approx(0.003)
    assert lookup("hf:facebook/bart-large-cnn").task == "summarization"
    assert lookup("local:gemma-3-270m").default_params["max_new_tokens"] == 40


@pytest.mark.parametrize(
    ("ref", "task", "io"),
    [
        ("openai:gpt-4o-mini@image-to-text", "image-to-text", ("image", "text")),
        ("openai:dall-e-3@text-to-image", "text-to-image", ("text", "image")),
        ("hf:org/model@fill-mask", "fill-mask", ("text", "text")),
        ("hf:org/model", "text-generation", ("text", "text")),
        (
            "replicate:owner/model:" + "0" * 64 + "@image-to-text",
            "image-to-text",
            ("image", "text"),
        ),
        ("local:org/captioner@image-to-text", "image-to-text", ("image", "text")),
    ],
)
def test_refs_outside_the_catalog_resolve_by_shape(
    ref: str, task: str, io: tuple[str, str]
) -> None:
    info = lookup(ref)
    assert info.task == task and (info.input_type, info.output_type) == io


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("replicate:owner/model", "say what the replicate model does"),
        ("local:org/model@text-to-image", "local does not do 'text-to-image'"),
        ("hf:org/model@sumarization", "did you mean @summarization"),
        ("hf:not-a-hub-id", "Hugging Face models are named by hub id"),
        ("nowhere:x", "unknown platform"),
    ],
)
def test_bad_refs_say_what_to_write(ref: str, message: str) -> None:
    with pytest.raises(UnknownModel, match=message):
        lookup(ref)


def test_a_users_models_file_adds_models_aliases_and_routes(tmp_path: Path) -> None:
    models_file = write(
        tmp_path / "models.yaml",
        """
models:
  - ref: local:summarizer
    source: sshleifer/distilbart-cnn-6-6
    task: summarization
    params: {max_new_tokens: 60}
    cost: free
  - ref: replicate:acme/painter
    task: text-to-image
    cost_usd: {per_call: 0.01}
routes:
  describe:
    candidates: [local:summarizer, openai:gpt-4o-mini]
""",
    )
    catalog = load_catalog(models_file)
    alias = catalog.lookup("local:summarizer")
    assert alias.model_id == "sshleifer/distilbart-cnn-6-6" and alias.task == "summarization"
    assert alias.default_params == {"max_new_tokens": 60}
    assert catalog.lookup("replicate:acme/painter").output_type == "image"
    assert catalog.route("describe").candidates == ["local:summarizer", "openai:gpt-4o-mini"]
    assert set(catalog.models) >= {"local:summarizer", "dummy:text"}
    with pytest.raises(UnknownModel):  # the built-in catalog is untouched by it
        lookup("replicate:acme/painter")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("models:\n  - ref: hf:org/m\n    task: painting\n", "hf does not do 'painting'"),
        (
            "models:\n  - ref: local:x\n    params: {temprature: 1}\n",
            "bad params for local:x: temprature",
        ),
        ("models:\n  - ref: replicate:a/b\n", "say what it does with task:"),
        ("models:\n  - model: local:x\n", "models.0.ref: Field required"),
        ("routes:\n  r:\n    candidates: []\n", "routes.r.candidates"),
        ("models: [unclosed\n", "cannot read models file"),
    ],
)
def test_a_bad_models_file_names_the_file_and_field(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write(tmp_path / "models.yaml", text)
    with pytest.raises(RegistryError, match=message) as info:
        load_catalog(path)
    assert "models.yaml" in str(info.value)


def test_unknown_route_names_the_known_ones(tmp_path: Path) -> None:
    catalog = load_catalog(
        write(tmp_path / "m.yaml", "routes:\n  fast:\n    candidates: [dummy:text]\n")
    )
    with pytest.raises(UnknownModel, match=r"unknown route 'slow' \(fast\)"):
        catalog.route("slow")


def test_the_example_models_file_and_networks_load() -> None:
    root = Path(__file__).resolve().parents[2] / "examples"
    catalog = load_catalog(root / "models.yaml")
    assert catalog.lookup("openai:llama3.2").sovereign  # an Ollama model: with the local ones
    assert not catalog.lookup("openai:gpt-4o-mini").sovereign
    assert catalog.route("describe").candidates[0] == "local:gemma-3-270m"
    assert catalog.lookup("route:describe").output_type == "text"
    for network in sorted((root / "networks").glob("*.yaml")):
        assert load_network(network, catalog).name == network.stem


PAINTER = "models:\n  - ref: replicate:acme/painter\n    task: text-to-image\n"
NETWORK = {"name": "n", "models": ["replicate:acme/painter", "dummy:image-to-text"]}


def test_a_spec_is_valid_for_the_home_it_names_in_any_order(tmp_path: Path) -> None:
    with_painter = load_catalog(write(tmp_path / "a.yaml", PAINTER), tmp_path)
    without = load_catalog(tmp_path / "none.yaml", tmp_path)
    for _ in range(2):  # neither check leaves anything behind for the next
        spec = validated(NETWORK, NetworkSpec, "net", with_painter)
        assert spec.models[0].info.output_type == "image"
        with pytest.raises(SpecError, match=r"net: models\.0\.model: .*add it to your models file"):
            validated(NETWORK, NetworkSpec, "net", without)


def test_a_changed_models_file_is_a_new_catalog(tmp_path: Path) -> None:
    path = write(tmp_path / "models.yaml", "models: []\n")
    before = load_catalog(path)
    assert load_catalog(path) is before  # built once per version of the file
    write(path, PAINTER)
    os.utime(path, ns=(1, 1))  # however coarse the clock, the file's version changed
    assert load_catalog(path).lookup("replicate:acme/painter").task == "text-to-image"
    with pytest.raises(UnknownModel):
        before.lookup("replicate:acme/painter")


def test_a_spec_built_by_hand_uses_the_home_the_environment_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "models.yaml", PAINTER)
    monkeypatch.setenv("SANDLOOP_HOME", str(tmp_path))
    assert NetworkSpec.model_validate(NETWORK).models[0].model == "replicate:acme/painter"
    elsewhere = load_catalog(None)
    with pytest.raises(ValueError, match="add it to your models file"):
        NetworkSpec.model_validate(NETWORK, context=spec_context(elsewhere))


def test_settings_copied_to_another_home_find_that_homes_models(tmp_path: Path) -> None:
    from sandloop.config import Settings
    from sandloop.models.registry import catalog_for

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    write(tmp_path / "b" / "models.yaml", PAINTER)
    first = Settings(home=str(tmp_path / "a"))
    assert first.local_dir == tmp_path / "a"  # found once, and kept for that home
    other = first.model_copy(update={"home": str(tmp_path / "b")})
    assert other.local_dir == tmp_path / "b" and first.local_dir == tmp_path / "a"
    assert catalog_for(other).lookup("replicate:acme/painter").task == "text-to-image"
    with pytest.raises(UnknownModel):
        catalog_for(first).lookup("replicate:acme/painter")
