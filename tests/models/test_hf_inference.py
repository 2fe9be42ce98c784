"""The hf platform through `huggingface_hub.InferenceClient`, against a local Inference API."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandloop import api
from sandloop.loops.network.spec import RunSpec
from sandloop.models import errors
from sandloop.models.base import CallContext, ModelInput
from sandloop.models.hf_inference import HFInferenceAdapter
from tests import fake_images
from tests.hf_server import FakeHF


@pytest.fixture(autouse=True)
def _online_to_localhost(monkeypatch: pytest.MonkeyPatch) -> None:
    """The suite runs with HF_HUB_OFFLINE=1, which blocks InferenceClient too; these tests
    only reach the 127.0.0.1 server."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


def adapter(hf_api: FakeHF, model: str, task: str) -> HFInferenceAdapter:
    hf_api.tasks[model] = task
    return HFInferenceAdapter(f"hf:{model}@{task}", model, task, hf_api.url)


@pytest.mark.parametrize(
    ("task", "params", "expected"),
    [
        ("text-generation", {}, "balloon [MASK] red a"),
        ("summarization", {}, "a red [MASK]"),
        ("translation", {}, "A RED [MASK] BALLOON"),
        ("fill-mask", {}, "a red river balloon"),
        ("text-classification", {}, "POSITIVE"),
        ("zero-shot-classification", {"candidate_labels": ["blue", "red"]}, "red"),
    ],
)
def test_text_tasks(
    hf_api: FakeHF, monkeypatch: pytest.MonkeyPatch, task: str, params: dict, expected: str
) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_token_3333")
    out = adapter(hf_api, "org/m", task).generate(
        ModelInput("text", text="a red [MASK] balloon"), params, CallContext(5, "s")
    )
    assert out.text == expected
    sent = hf_api.requests[-1]
    assert sent["model"] == "org/m" and sent["authorization"] == "Bearer hf_token_3333"
    assert sent["body"]["inputs"] == "a red [MASK] balloon"


def test_images_both_ways(hf_api: FakeHF) -> None:
    drawn = adapter(hf_api, "org/draw", "text-to-image").generate(
        ModelInput("text", text="sky"), {"prefix": "blue "}, CallContext(9, "s")
    )
    assert drawn.type == "image"
    assert hf_api.requests[-1]["body"] == {"inputs": "blue sky", "parameters": {"seed": 9}}
    seen = adapter(hf_api, "org/see", "image-to-text").generate(
        ModelInput("image", data=drawn.data), {}, CallContext(None, "s")
    )
    assert seen.text == fake_images.caption_for(drawn.data or b"")
    assert hf_api.requests[-1]["body"] == drawn.data  # raw bytes, as the Inference API takes


@pytest.mark.parametrize(
    ("mode", "error", "retryable"),
    [
        ("401", errors.AuthError, False),
        ("402", errors.QuotaExceeded, False),
        ("429", errors.RateLimited, True),
        ("503", errors.Unavailable, True),
        ("slow", errors.Timeout, True),
        ("malformed", errors.InvalidOutput, False),
    ],
)
def test_failures_are_typed(hf_api: FakeHF, mode: str, error: type, retryable: bool) -> None:
    hf_api.script.append(mode)
    with pytest.raises(error) as info:
        adapter(hf_api, "org/m", "summarization").generate(
            ModelInput("text", text="x"), {"timeout_s": 1}, CallContext(1, "s")
        )
    assert errors.is_retryable(info.value) is retryable
    if mode == "429":
        assert info.value.retry_after == 3.0


def test_zero_shot_without_labels_is_bad_input(hf_api: FakeHF) -> None:
    with pytest.raises(errors.InvalidInput, match="candidate_labels"):
        adapter(hf_api, "org/z", "zero-shot-classification").generate(
            ModelInput("text", text="x"), {}, CallContext(1, "s")
        )
    assert hf_api.requests == []


@pytest.mark.usefixtures("prefect_api_url")
def test_a_catalog_model_in_a_network(
    hf_api: FakeHF, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SANDLOOP_HF_BASE_URL", hf_api.url)
    hf_api.tasks["facebook/bart-large-cnn"] = "summarization"
    hf_api.script.append("503")  # a loading model: retried
    run = RunSpec.model_validate(
        {
            "network": {"name": "hf", "models": ["hf:facebook/bart-large-cnn", "dummy:text"]},
            "genesis": "one two three four five",
            "seed": 1,
            "stop": {"max_steps": 2},
        }
    )
    summary = api.run_network(run, home)
    steps = api.run_steps(summary.thread, home)
    assert summary.status == "completed"
    assert steps["output"].iloc[0] == "one two three" and len(hf_api.requests) == 2
