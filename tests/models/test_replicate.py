"""The replicate platform through the official client, against a local Replicate API."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sandloop import api
from sandloop.loops.network.spec import RunSpec
from sandloop.models import errors
from sandloop.models.base import CallContext, ModelInput
from sandloop.models.replicate_adapter import ReplicateAdapter
from tests import fake_images, openai_server
from tests.replicate_server import FakeReplicate

FLUX = "black-forest-labs/flux-schnell"


def flux(api_url: str) -> ReplicateAdapter:
    return ReplicateAdapter(f"replicate:{FLUX}", FLUX, "text-to-image", api_url, poll_interval_s=0)


def test_text_to_image_downloads_the_output_at_once(
    replicate_api: FakeReplicate, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REPLICATE_API_TOKEN", "r8_token_7777")
    out = flux(replicate_api.url).generate(
        ModelInput("text", text="balloon"),
        {"prefix": "a red ", "input": {"steps": 4}},
        CallContext(1, "s"),
    )
    assert out.type == "image" and out.data == fake_images.png_for("a red balloon")
    assert replicate_api.downloads == 1 and out.usage["prediction_id"] == "p0"
    sent = replicate_api.requests[0]
    assert sent["path"] == f"/v1/models/{FLUX}/predictions"
    assert sent["body"] == {"input": {"steps": 4, "prompt": "a red balloon"}}
    assert sent["authorization"] == "Bearer r8_token_7777" and sent["prefer"] == "wait=60"


def test_image_to_text_sends_the_image_as_a_data_url(replicate_api: FakeReplicate) -> None:
    picture = fake_images.png_for("sky")
    blip = ReplicateAdapter(
        "replicate:salesforce/blip@image-to-text",
        "salesforce/blip",
        "image-to-text",
        replicate_api.url,
    )
    out = blip.generate(ModelInput("image", data=picture), {}, CallContext(None, "s"))
    assert out.text == fake_images.caption_for(picture)
    assert replicate_api.requests[0]["body"]["input"]["image"].startswith("data:image/png;base64,")


def test_streamed_text_is_joined_and_versions_use_the_predictions_endpoint(
    replicate_api: FakeReplicate,
) -> None:
    version = "meta/llama:" + "ab" * 32
    llm = ReplicateAdapter(
        f"replicate:{version}@text-generation", version, "text-generation", replicate_api.url
    )
    out = llm.generate(ModelInput("text", text="one two three"), {}, CallContext(1, "s"))
    assert out.text == "three two one"
    assert replicate_api.requests[0]["path"] == "/v1/predictions"
    assert replicate_api.requests[0]["body"]["version"] == "ab" * 32


def test_a_prediction_that_is_still_starting_is_polled(replicate_api: FakeReplicate) -> None:
    replicate_api.script.append("poll")
    out = flux(replicate_api.url).generate(ModelInput("text", text="x"), {}, CallContext(1, "s"))
    assert out.data == fake_images.png_for("x")


@pytest.mark.parametrize(
    ("mode", "error", "retryable"),
    [
        ("401", errors.AuthError, False),
        ("402", errors.QuotaExceeded, False),
        ("429", errors.RateLimited, True),
        ("500", errors.Unavailable, True),
        ("slow", errors.Timeout, True),
        ("malformed", errors.InvalidOutput, False),
        ("nsfw", errors.ContentFiltered, False),
        ("failed", errors.InvalidInput, False),
        ("expired", errors.Unavailable, True),
    ],
)
def test_failures_are_typed(
    replicate_api: FakeReplicate, mode: str, error: type, retryable: bool
) -> None:
    replicate_api.script.append(mode)
    with pytest.raises(error) as info:
        flux(replicate_api.url).generate(
            ModelInput("text", text="x"), {"timeout_s": 1}, CallContext(1, "s")
        )
    assert errors.is_retryable(info.value) is retryable
    if mode == "429":
        assert info.value.retry_after == 2.0
    if mode == "expired":
        assert "expired" in str(info.value) and replicate_api.downloads == 1


@pytest.mark.usefixtures("prefect_api_url")
def test_a_network_from_replicate_images_to_openai_vision(
    replicate_api: FakeReplicate,
    endpoint: tuple[openai_server.FakeOpenAI, str],
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """text→image on Replicate → image→text on an OpenAI vision model, with one expired output
    URL on the way: the step is retried, images land in the blob store, no URL is recorded."""
    state, url = endpoint
    monkeypatch.setenv("SANDLOOP_OPENAI_BASE_URL", url)
    monkeypatch.setenv("SANDLOOP_REPLICATE_BASE_URL", replicate_api.url)
    replicate_api.script.append("expired")
    run = RunSpec.model_validate(
        {
            "network": {
                "name": "panic",
                "models": [f"replicate:{FLUX}", "openai:gpt-4o-mini@image-to-text"],
            },
            "genesis": "a red balloon",
            "seed": 2,
            "stop": {"max_steps": 4},
        }
    )
    summary = api.run_network(run, home)
    assert summary.status == "completed"
    steps = api.run_steps(summary.thread, home)
    store = api.open_store(home)
    images = steps[steps["output_type"] == "image"]
    captions = steps[steps["output_type"] == "text"]
    assert len(images) == 2 and len(captions) == 2
    for image, caption in zip(images.itertuples(), captions.itertuples(), strict=True):
        picture = store.blobs.get(image.output)
        assert picture == fake_images.png_for(image.input)
        assert caption.input == image.output  # the vision step read the blob its parent wrote
        assert caption.output == fake_images.caption_for(picture)
    assert len(replicate_api.requests) == 3  # one expired output, retried
    written = b"".join(p.read_bytes() for p in home.rglob("*") if p.is_file())
    assert replicate_api.url.encode() not in written and b"/files/p" not in written
    vision = [r for r in state.requests if r["path"] == "/v1/chat/completions"]
    assert vision[0]["body"]["messages"][0]["content"][1]["image_url"]["url"].startswith("data:")
    assert json.loads(captions["metadata"].iloc[0])["usage"]["model"] == "gpt-4o-mini"
