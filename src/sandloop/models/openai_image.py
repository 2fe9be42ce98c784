"""The openai platform's text→image: the Images API of OpenAI or a compatible server.

The image comes back as base64 in the response (never a URL to fetch later) and goes straight
into the blob store through the step's output.
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Any

from sandloop.models.base import AdapterContext, CallContext, ModelInput, ModelOutput
from sandloop.models.errors import InvalidInput, InvalidOutput, from_openai
from sandloop.models.images import checked_image
from sandloop.models.openai_chat import openai_client
from sandloop.models.platforms.openai import OpenAIImageParams

if TYPE_CHECKING:
    from sandloop.models.registry import ModelInfo


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
        extra: dict[str, Any] = {"quality": p.quality} if p.quality else {}
        # gpt-image models always answer in base64 and reject response_format; DALL·E needs it.
        if self.model.startswith("dall-e"):
            extra["response_format"] = "b64_json"
        try:
            response = self._client.images.generate(
                model=self.model,
                prompt=p.prefix + model_input.text + p.suffix,
                n=1,
                size=p.size,
                timeout=p.timeout_s,
                **extra,
            )
        except openai.OpenAIError as exc:
            raise from_openai(exc, self.ref) from None
        encoded = response.data[0].b64_json if response.data else None
        if not encoded:
            raise InvalidOutput("the endpoint returned no image data", model=self.ref)
        try:
            data = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raise InvalidOutput("the image is not valid base64", model=self.ref) from None
        usage: dict[str, Any] = {"images": 1}
        if response.usage is not None:
            usage["input_tokens"] = response.usage.input_tokens
            usage["output_tokens"] = response.usage.output_tokens
        return ModelOutput("image", data=checked_image(data, self.ref), usage=usage)


def create(info: ModelInfo, ctx: AdapterContext) -> OpenAIImageAdapter:
    return OpenAIImageAdapter(info.ref, info.model_id, ctx.base_url, ctx.settings.user)
