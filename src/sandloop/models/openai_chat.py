"""The openai platform: chat completions from any OpenAI-compatible endpoint: text→text, and
image→text for vision models (the image goes in the user message as a data URL).

OpenAI itself, or Ollama, vLLM and llama.cpp servers through ``SANDLOOP_OPENAI_BASE_URL``. The
key is resolved per user (see ``credentials``) when the client is made and lives only in it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sandloop.models.base import AdapterContext, CallContext, ModelInput, ModelOutput
from sandloop.models.errors import ContentFiltered, InvalidInput, InvalidOutput, from_openai
from sandloop.models.images import data_url
from sandloop.models.platforms.openai import OpenAIChatParams

if TYPE_CHECKING:
    from openai import OpenAI

    from sandloop.models.registry import ModelInfo

DEFAULT_IMAGE_PROMPT = "Describe this image in one or two sentences."


def openai_client(base_url: str | None, user: str | None) -> OpenAI:
    """A client with the user's key. Retries are Prefect's job, typed by what can succeed."""
    from openai import OpenAI

    from sandloop.credentials import resolve_key

    # Local servers (Ollama, vLLM) take any key; the client insists on having one.
    key = resolve_key("openai", user=user)
    return OpenAI(base_url=base_url, api_key=key.value if key else "unused", max_retries=0)


class OpenAIChatAdapter:
    def __init__(self, ref: str, model: str, base_url: str | None, user: str | None = None) -> None:
        self.ref = ref
        self.model = model
        self._client = openai_client(base_url, user)

    def generate(
        self, model_input: ModelInput, params: dict[str, Any], ctx: CallContext
    ) -> ModelOutput:
        import openai

        p = OpenAIChatParams.model_validate(params)
        messages: list[dict[str, Any]] = (
            [{"role": "system", "content": p.system}] if p.system else []
        )
        if model_input.messages:
            messages.extend(model_input.messages)
        else:
            messages.append({"role": "user", "content": self._user_content(model_input, p)})
        request: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "temperature": p.temperature,
            "top_p": p.top_p,
            "max_tokens": p.max_tokens,
            "seed": ctx.seed,
            "timeout": p.timeout_s,
        }
        try:
            if ctx.on_text is not None:
                text, finish, usage, model = self._streamed(request, ctx.on_text)
            else:
                response = self._client.chat.completions.create(**request)
                choice = response.choices[0] if response.choices else None
                text = (choice.message.content or "") if choice else ""
                finish = choice.finish_reason if choice else None
                usage, model = response.usage, response.model
        except openai.OpenAIError as exc:
            raise from_openai(exc, self.ref) from None
        text = text.strip()
        if finish == "content_filter":
            raise ContentFiltered("the endpoint filtered the answer", model=self.ref)
        if not text:
            raise InvalidOutput("the endpoint returned no text", model=self.ref)
        return ModelOutput(
            "text",
            text=text,
            usage={
                "input_tokens": usage.prompt_tokens if usage else None,
                "output_tokens": usage.completion_tokens if usage else None,
                "model": model,
            },
        )

    def _streamed(
        self, request: dict[str, Any], on_text: Callable[[str], None]
    ) -> tuple[str, str | None, Any, str]:
        """The same completion as a stream, each piece of text passed on as it comes; the
        usage comes in the last chunk (``include_usage``)."""
        pieces: list[str] = []
        finish: str | None = None
        usage: Any = None
        model = self.model
        stream = self._client.chat.completions.create(
            **request, stream=True, stream_options={"include_usage": True}
        )
        for chunk in stream:
            model = chunk.model or model
            usage = chunk.usage or usage
            for choice in chunk.choices:
                finish = choice.finish_reason or finish
                if choice.delta.content:
                    pieces.append(choice.delta.content)
                    on_text(choice.delta.content)
        return "".join(pieces), finish, usage, model

    def _user_content(self, model_input: ModelInput, p: OpenAIChatParams) -> Any:
        if model_input.type == "text" and model_input.text is not None:
            return p.prefix + model_input.text + p.suffix
        if model_input.type == "image" and model_input.data:
            prompt = (p.prefix + p.suffix).strip() or DEFAULT_IMAGE_PROMPT
            return [
                {"type": "text", "text": prompt},
                {"type": "image_url", "image_url": {"url": data_url(model_input.data)}},
            ]
        raise InvalidInput(f"no {model_input.type} input to send", model=self.ref)


def create(info: ModelInfo, ctx: AdapterContext) -> OpenAIChatAdapter:
    return OpenAIChatAdapter(info.ref, info.model_id, ctx.base_url, ctx.settings.user)
