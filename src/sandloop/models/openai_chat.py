"""The openai platform: chat completions from any OpenAI-compatible endpoint: text→text, and
image→text for vision models (the image goes in the user message as a data URL).

OpenAI itself, or Ollama, vLLM and llama.cpp servers through ``SANDLOOP_OPENAI_BASE_URL``. The
key is resolved per user (see ``credentials``) when the client is made and lives only in it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sandloop.models.base import CallContext, ModelInput, ModelOutput
from sandloop.models.errors import ContentFiltered, InvalidInput, InvalidOutput, from_openai
from sandloop.models.images import data_url
from sandloop.models.params import OpenAIChatParams

if TYPE_CHECKING:
    from openai import OpenAI

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
        try:
            response = self._client.chat.completions.create(
                model=self.model,
                messages=messages,  # type: ignore[arg-type]
                temperature=p.temperature,
                top_p=p.top_p,
                max_tokens=p.max_tokens,
                seed=ctx.seed,
                timeout=p.timeout_s,
            )
        except openai.OpenAIError as exc:
            raise from_openai(exc, self.ref) from None
        choice = response.choices[0] if response.choices else None
        text = (choice.message.content or "").strip() if choice else ""
        if choice is not None and choice.finish_reason == "content_filter":
            raise ContentFiltered("the endpoint filtered the answer", model=self.ref)
        if not text:
            raise InvalidOutput("the endpoint returned no text", model=self.ref)
        usage = response.usage
        return ModelOutput(
            "text",
            text=text,
            usage={
                "input_tokens": usage.prompt_tokens if usage else None,
                "output_tokens": usage.completion_tokens if usage else None,
                "model": response.model,
            },
        )

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
