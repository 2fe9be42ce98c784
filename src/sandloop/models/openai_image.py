"""The openai platform's text→image and image→image: the Images API (generations and edits) of
OpenAI or a compatible server.

The image comes back as base64 in the response (never a URL to fetch later) and goes straight
into the blob store through the step's output.
"""

from __future__ import annotations

import base64
import binascii
import io
from typing import TYPE_CHECKING, Any

from sandloop.models.base import AdapterContext, CallContext, ModelInput, ModelOutput
from sandloop.models.errors import InvalidInput, InvalidOutput, from_openai
from sandloop.models.images import checked_image, mime_type
from sandloop.models.openai_chat import openai_client
from sandloop.models.platforms.openai import OpenAIImageEditParams, OpenAIImageParams

if TYPE_CHECKING:
    from openai.types import ImagesResponse

    from sandloop.models.registry import ModelInfo

#: What the edits endpoint reads; any other image a step holds is sent as a PNG.
EDITABLE = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}


class OpenAIImageAdapter:
    def __init__(self, ref: str, model: str, base_url: str | None, user: str | None = None) -> None:
        self.ref = ref
        self.model = model
        self._client = openai_client(base_url, user)

    def generate(
        self, model_input: ModelInput, params: dict[str, Any], ctx: CallContext
    ) -> ModelOutput:
        import openai

        p = OpenAIImageParams.model_validate(params)
        if model_input.text is None:
            raise InvalidInput("image models take a text prompt", model=self.ref)
        try:
            response = self._client.images.generate(
                model=self.model,
                prompt=p.prefix + model_input.text + p.suffix,
                n=1,
                size=p.size,
                timeout=p.timeout_s,
                **_extra(self.model, p.quality),
            )
        except openai.OpenAIError as exc:
            raise from_openai(exc, self.ref) from None
        return image_output(response, self.ref)


class OpenAIImageEditAdapter(OpenAIImageAdapter):
    """image→image: the step's image goes up as a file with the edit prompt."""

    def generate(
        self, model_input: ModelInput, params: dict[str, Any], ctx: CallContext
    ) -> ModelOutput:
        import openai

        p = OpenAIImageEditParams.model_validate(params)
        if model_input.data is None:
            raise InvalidInput("image edits take an image", model=self.ref)
        data, mime = editable(model_input.data, self.ref)
        try:
            response = self._client.images.edit(
                model=self.model,
                image=(f"input.{EDITABLE[mime]}", data, mime),
                prompt=p.prompt,
                n=1,
                size=p.size,
                timeout=p.timeout_s,
                **_extra(self.model, p.quality),
            )
        except openai.OpenAIError as exc:
            raise from_openai(exc, self.ref) from None
        return image_output(response, self.ref)


def _extra(model: str, quality: str | None) -> dict[str, Any]:
    extra: dict[str, Any] = {"quality": quality} if quality else {}
    # gpt-image models always answer in base64 and reject response_format; DALL·E needs it.
    if model.startswith("dall-e"):
        extra["response_format"] = "b64_json"
    return extra


def editable(data: bytes, model: str) -> tuple[bytes, str]:
    """The image as the edits endpoint takes it, and its media type: PNG, JPEG and WebP as they
    are, anything else (a GIF, a BMP) re-encoded as PNG."""
    mime = mime_type(data)
    if mime in EDITABLE:
        return data, mime
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
    except (UnidentifiedImageError, OSError):
        raise InvalidInput("the input is not an image", model=model) from None
    return buffer.getvalue(), "image/png"


def image_output(response: ImagesResponse, model: str) -> ModelOutput:
    """The first image of an Images API answer, decoded and checked, with its usage."""
    encoded = response.data[0].b64_json if response.data else None
    if not encoded:
        raise InvalidOutput("the endpoint returned no image data", model=model)
    try:
        data = base64.b64decode(encoded, validate=True)
    except binascii.Error:
        raise InvalidOutput("the image is not valid base64", model=model) from None
    usage: dict[str, Any] = {"images": 1}
    if response.usage is not None:
        usage["input_tokens"] = response.usage.input_tokens
        usage["output_tokens"] = response.usage.output_tokens
    return ModelOutput("image", data=checked_image(data, model), usage=usage)


def create(info: ModelInfo, ctx: AdapterContext) -> OpenAIImageAdapter:
    return OpenAIImageAdapter(info.ref, info.model_id, ctx.base_url, ctx.settings.user)


def create_edit(info: ModelInfo, ctx: AdapterContext) -> OpenAIImageEditAdapter:
    return OpenAIImageEditAdapter(info.ref, info.model_id, ctx.base_url, ctx.settings.user)
