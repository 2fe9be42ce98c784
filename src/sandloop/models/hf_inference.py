"""The hf platform: Hugging Face Inference through ``huggingface_hub.InferenceClient``.

The adapter posts to ``<hf_base_url>/models/<id>`` itself — the URL the client would build for a
hub id — because given a bare id the client asks the Hub for the model's metadata before every
call. The same base URL setting points it at an Inference Endpoint or a local server.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

from sandloop.models.audio import UndecodableAudio, audio_facts, audio_output
from sandloop.models.base import AdapterContext, CallContext, ModelInput, ModelOutput
from sandloop.models.errors import (
    AuthError,
    InvalidInput,
    InvalidOutput,
    ModelError,
    QuotaExceeded,
    RateLimited,
    Timeout,
    Unavailable,
)
from sandloop.models.images import checked_image
from sandloop.models.io_types import TASK_IO
from sandloop.models.platforms.hf import HFParams

if TYPE_CHECKING:
    from sandloop.models.registry import ModelInfo


class HFInferenceAdapter:
    def __init__(
        self, ref: str, model: str, task: str, base_url: str, user: str | None = None
    ) -> None:
        from sandloop.credentials import resolve_key

        self.ref, self.model, self.task = ref, model, task
        self.url = f"{base_url.rstrip('/')}/models/{model}"
        key = resolve_key("hf", user=user)
        self._token = key.value if key else None

    def generate(
        self, model_input: ModelInput, params: dict[str, Any], ctx: CallContext
    ) -> ModelOutput:
        from huggingface_hub import InferenceClient

        p = HFParams.model_validate(params)
        client = InferenceClient(model=self.url, token=self._token, timeout=p.timeout_s)
        try:
            return self._call(client, model_input, p, ctx)
        except ModelError:
            raise
        except Exception as exc:
            raise typed_hf_error(exc, self.ref) from None

    def _call(
        self, client: Any, model_input: ModelInput, p: HFParams, ctx: CallContext
    ) -> ModelOutput:
        if TASK_IO[self.task][0] != "text":
            return self._from_blob(client, model_input, p)
        if model_input.text is None:
            raise InvalidInput(f"{self.task} takes text", model=self.ref)
        text = p.prefix + model_input.text + p.suffix
        if self.task == "text-to-image":
            image = client.text_to_image(text, seed=ctx.seed)
            return ModelOutput("image", data=checked_image(_png(image), self.ref))
        if self.task in ("text-to-speech", "text-to-audio"):
            # One route for both: the Inference API runs music models behind text-to-speech.
            return audio_output(client.text_to_speech(text), self.ref)
        if self.task in ("text-generation", "text2text-generation"):
            answer = client.text_generation(
                text, max_new_tokens=p.max_new_tokens, temperature=p.temperature, seed=ctx.seed
            )
            return _text(answer, self.ref)
        if self.task == "summarization":
            return _text(client.summarization(text).summary_text, self.ref)
        if self.task == "translation":
            return _text(client.translation(text).translation_text, self.ref)
        if self.task == "fill-mask":
            return _text(client.fill_mask(text)[0].sequence, self.ref)
        if self.task == "text-classification":
            return _text(client.text_classification(text)[0].label, self.ref)
        if self.task == "zero-shot-classification":
            if not p.candidate_labels:
                raise InvalidInput("zero-shot needs candidate_labels", model=self.ref)
            ranked = client.zero_shot_classification(text, candidate_labels=p.candidate_labels)
            return _text(ranked[0].label, self.ref)
        raise InvalidInput(f"the hf adapter does not do {self.task!r}", model=self.ref)

    def _from_blob(self, client: Any, model_input: ModelInput, p: HFParams) -> ModelOutput:
        data = model_input.data
        if not data or model_input.type != TASK_IO[self.task][0]:
            raise InvalidInput(f"{self.task} takes {TASK_IO[self.task][0]}", model=self.ref)
        if self.task == "image-to-text":
            return _text(client.image_to_text(data).generated_text, self.ref)
        if self.task == "image-to-image":
            image = client.image_to_image(data, prompt=p.prompt or None)
            return ModelOutput("image", data=checked_image(_png(image), self.ref))
        try:
            audio_facts(data)  # a sound the endpoint could not read fails here, with its reason
        except UndecodableAudio as exc:
            raise InvalidInput(f"not readable audio: {exc}", model=self.ref) from None
        return _text(client.automatic_speech_recognition(data).text, self.ref)


def _png(image: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _text(value: Any, ref: str) -> ModelOutput:
    if not isinstance(value, str) or not value.strip():
        raise InvalidOutput("the endpoint returned no text", model=ref)
    return ModelOutput("text", text=value.strip())


def typed_hf_error(exc: Exception, ref: str) -> ModelError:
    """Map huggingface_hub's errors (and the HTTP library under it) to typed failures."""
    from huggingface_hub.errors import (
        HfHubHTTPError,
        InferenceTimeoutError,
        OverloadedError,
        ValidationError,
    )

    if isinstance(exc, InferenceTimeoutError | TimeoutError):
        return Timeout(f"no answer in time: {exc}", model=ref)
    if isinstance(exc, ValidationError):
        return InvalidInput(str(exc), model=ref)
    if isinstance(exc, OverloadedError):
        return Unavailable(str(exc), model=ref)
    response = getattr(exc, "response", None)
    if isinstance(exc, HfHubHTTPError) and response is not None:
        status = response.status_code
        message = f"{status}: {str(exc).splitlines()[0]}"
        if status in (401, 403):
            return AuthError(message, model=ref)
        if status == 402:
            return QuotaExceeded(message, model=ref)
        if status == 429:
            header = response.headers.get("retry-after")
            retry_after = float(header) if header and header.replace(".", "").isdigit() else None
            return RateLimited(message, retry_after=retry_after, model=ref)
        if status >= 500:
            return Unavailable(message, model=ref)
        return InvalidInput(message, model=ref)
    if isinstance(exc, ValueError | KeyError | TypeError):  # a body the client could not parse
        return InvalidOutput(f"malformed response: {exc}", model=ref)
    if isinstance(exc, OSError) or type(exc).__module__.startswith(("httpx", "httpcore")):
        return Unavailable(f"cannot reach the endpoint: {exc}", model=ref)
    return ModelError(f"{type(exc).__name__}: {exc}", model=ref)


def create(info: ModelInfo, ctx: AdapterContext) -> HFInferenceAdapter:
    base_url = ctx.base_url or ctx.settings.hf_base_url
    return HFInferenceAdapter(info.ref, info.model_id, info.task, base_url, ctx.settings.user)
