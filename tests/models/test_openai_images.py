"""The openai platform's images: text→image through the Images API, image→text through vision
chat, against the local OpenAI-compatible server."""

from __future__ import annotations

import pytest

from sandloop.models import errors
from sandloop.models.base import CallContext, ModelInput
from sandloop.models.openai_chat import DEFAULT_IMAGE_PROMPT, OpenAIChatAdapter
from sandloop.models.openai_image import OpenAIImageAdapter
from tests import fake_images, openai_server

Endpoint = tuple[openai_server.FakeOpenAI, str]


def test_text_to_image_decodes_base64_into_bytes(endpoint: Endpoint) -> None:
    state, url = endpoint
    model = OpenAIImageAdapter("openai:gpt-image-1", "gpt-image-1", url)
    out = model.generate(
        ModelInput("text", text="a kite"),
        {"suffix": ", watercolour", "size": "256x256"},
        CallContext(1, "s"),
    )
    assert out.type == "image" and out.data == fake_images.png_for("a kite, watercolour")
    body = state.requests[-1]["body"]
    assert state.requests[-1]["path"] == "/v1/images/generations"
    assert body["prompt"] == "a kite, watercolour" and body["size"] == "256x256"
    assert "response_format" not in body  # gpt-image models reject it


def test_dall_e_asks_for_base64(endpoint: Endpoint) -> None:
    state, url = endpoint
    OpenAIImageAdapter("openai:dall-e-3", "dall-e-3", url).generate(
        ModelInput("text", text="x"), {}, CallContext(1, "s")
    )
    assert state.requests[-1]["body"]["response_format"] == "b64_json"


def test_vision_chat_sends_the_image_as_a_data_url(endpoint: Endpoint) -> None:
    state, url = endpoint
    picture = fake_images.png_for("tree")
    model = OpenAIChatAdapter("openai:gpt-4o-mini@image-to-text", "gpt-4o-mini", url)
    out = model.generate(ModelInput("image", data=picture), {}, CallContext(1, "s"))
    assert out.text == fake_images.caption_for(picture)
    content = state.requests[-1]["body"]["messages"][0]["content"]
    assert content[0] == {"type": "text", "text": DEFAULT_IMAGE_PROMPT}
    assert fake_images.from_data_url(content[1]["image_url"]["url"]) == picture


@pytest.mark.parametrize(
    ("mode", "error"), [("429", errors.RateLimited), ("500", errors.Unavailable)]
)
def test_image_failures_are_typed(endpoint: Endpoint, mode: str, error: type) -> None:
    state, url = endpoint
    state.script.append(mode)
    with pytest.raises(error):
        OpenAIImageAdapter("openai:gpt-image-1", "gpt-image-1", url).generate(
            ModelInput("text", text="x"), {}, CallContext(1, "s")
        )
