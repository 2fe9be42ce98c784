"""The local platform beyond causal LMs, with tiny real models the tests build."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandloop import api
from sandloop.config import Settings
from sandloop.loops.network.spec import RunSpec
from sandloop.models.base import CallContext, ModelInput
from sandloop.models.errors import InvalidInput
from sandloop.models.factory import get_adapter
from sandloop.models.registry import load_catalog
from tests import fake_images

lookup = load_catalog(None).lookup  # the built-in catalog's


def generate(ref: str, model_input: ModelInput, params: dict, home: Path, seed: int = 1) -> str:
    adapter = get_adapter(lookup(ref), Settings.for_home(home))
    out = adapter.generate(model_input, params, CallContext(seed, "s"))
    assert out.type == "text" and out.text
    return out.text


@pytest.mark.parametrize("task", ["summarization", "translation", "text2text-generation"])
def test_seq2seq_tasks_generate_deterministically(
    tiny_local_models: dict[str, Path], home: Path, task: str
) -> None:
    ref = f"local:{tiny_local_models['seq2seq']}@{task}"
    assert lookup(ref).task == task and lookup(ref).input_type == "text"
    text = ModelInput("text", text="def parse(line): return line.split()")
    params = {"max_new_tokens": 6, "temperature": 1.0}
    first = generate(ref, text, params, home, seed=3)
    assert first == generate(ref, text, params, home, seed=3)
    assert first != generate(ref, text, params, home, seed=4)


def test_fill_mask_fills_the_next_word_when_the_input_has_no_mask(
    tiny_local_models: dict[str, Path], home: Path
) -> None:
    ref = f"local:{tiny_local_models['mlm']}@fill-mask"
    out = generate(ref, ModelInput("text", text="import json and"), {}, home)
    assert out.startswith("import json and") and len(out) > len("import json and")
    masked = generate(ref, ModelInput("text", text="the <mask> of it"), {}, home)
    assert masked.startswith("the ") and masked.endswith(" of it") and "<mask>" not in masked


def test_classifiers_answer_with_a_label(tiny_local_models: dict[str, Path], home: Path) -> None:
    nli = tiny_local_models["nli"]
    label = generate(f"local:{nli}@text-classification", ModelInput("text", text="x"), {}, home)
    assert label in {"contradiction", "neutral", "entailment"}
    params = {"candidate_labels": ["kite", "river", "stone"]}
    zero_shot = f"local:{nli}@zero-shot-classification"
    assert (
        generate(zero_shot, ModelInput("text", text="a kite"), params, home)
        in params["candidate_labels"]
    )
    with pytest.raises(InvalidInput, match="candidate_labels"):
        generate(zero_shot, ModelInput("text", text="a kite"), {}, home)


def test_captioning_reads_an_image(tiny_local_models: dict[str, Path], home: Path) -> None:
    ref = f"local:{tiny_local_models['captioner']}@image-to-text"
    assert lookup(ref).input_type == "image"
    picture = ModelInput("image", data=fake_images.png_for("sea"))
    caption = generate(ref, picture, {"max_new_tokens": 5}, home)
    assert caption == generate(ref, picture, {"max_new_tokens": 5}, home)
    with pytest.raises(InvalidInput, match="not a readable image"):
        generate(ref, ModelInput("image", data=b"not a png"), {}, home)


@pytest.mark.usefixtures("prefect_api_url")
def test_a_local_image_loop_with_a_captioner(
    tiny_local_models: dict[str, Path], home: Path
) -> None:
    """dummy text→image → a local captioner → …: the captioner reads each blob its parent wrote."""
    captioner = f"local:{tiny_local_models['captioner']}@image-to-text"
    run = RunSpec.model_validate(
        {
            "network": {
                "name": "local-images",
                "models": [
                    "dummy:text-to-image",
                    {"model": captioner, "params": {"max_new_tokens": 5}},
                ],
            },
            "genesis": "a lighthouse",
            "seed": 1,
            "stop": {"max_steps": 4, "stop_on_repeat": False},
        }
    )
    summary = api.run_network(run, home)
    steps = api.run_steps(summary.thread, home)
    assert summary.status == "completed" and steps["status"].eq("ok").all()
    assert steps["output_type"].tolist() == ["image", "text", "image", "text"]
    assert steps["input"].iloc[1] == steps["output"].iloc[0]
