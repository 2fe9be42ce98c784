"""The openai platform: chat completions (text→text) from any OpenAI-compatible endpoint.

OpenAI itself, or Ollama, vLLM and llama.cpp servers through ``SANDLOOP_OPENAI_BASE_URL``. The
key is resolved per user (see ``credentials``) when the client is made and lives only in it.
"""

from __future__ import annotations

from typing import Any

from sandloop.models.base import CallContext, ModelInput, ModelOutput
from sandloop.models.errors import InvalidInput, InvalidOutput, from_openai
from sandloop.models.params import OpenAIChatParams


class OpenAIChatAdapter:
    def __init__(self, ref: str, model: str, base_url: str | None, user: str | None = None) -> None:
        from openai import OpenAI

        from sandloop.credentials import resolve_key

        self.ref = ref
        self.model = model
        # Local servers (Ollama, vLLM) take any key; the client insists on having one.
        key = resolve_key("openai", user=user)
        api_key = key.value if key else "unused"
        # Retries are Prefect's job, typed by what can succeed.
        self._client = OpenAI(base_url=base_url, api_key=api_key, max_retries=0)

    def generate(
        self, model_input: ModelInput, params: dict[str, Any], ctx: CallContext
    ) -> ModelOutput:
        import openai

        p = OpenAIChatParams.model_validate(params)
        if model_input.text is None:
            raise InvalidInput("chat models take text", model=self.ref)
        messages = [{"role": "system", "content": p.system}] if p.system else []
        messages.append({"role": "user", "content": p.prefix + model_input.text + p.suffix})
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
            from sandloop.models.errors import ContentFiltered

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
