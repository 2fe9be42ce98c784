"""The replicate platform, through the official ``replicate`` client.

Replicate answers with URLs that expire after an hour, so image and audio outputs are downloaded
the moment a prediction succeeds and travel on as bytes (the flow puts them in the blob store and
records the blob key, never the URL). Images and sounds go in as data URLs. The client's own
handling of 429s on polling stays; everything else is typed here so Prefect retries only what can
succeed.
"""

from __future__ import annotations

import re
import threading
import time
from typing import TYPE_CHECKING, Any

from sandloop.models.audio import UndecodableAudio, audio_facts, audio_output
from sandloop.models.base import AdapterContext, CallContext, ModelInput, ModelOutput
from sandloop.models.errors import (
    AuthError,
    ContentFiltered,
    InvalidInput,
    InvalidOutput,
    ModelError,
    QuotaExceeded,
    RateLimited,
    Timeout,
    Unavailable,
)
from sandloop.models.images import checked_image, data_url, decode_data_url
from sandloop.models.io_types import TASK_IO
from sandloop.models.platforms.replicate import ReplicateParams

if TYPE_CHECKING:
    import httpx
    from replicate.prediction import Prediction

    from sandloop.models.registry import ModelInfo

_TERMINAL = ("succeeded", "failed", "canceled")
_FILTERED = re.compile(r"nsfw|sensitive|safety|content.?polic", re.IGNORECASE)


class ReplicateAdapter:
    def __init__(
        self,
        ref: str,
        model: str,
        task: str,
        base_url: str | None,
        user: str | None = None,
        poll_interval_s: float = 0.5,
    ) -> None:
        from replicate.client import Client

        from sandloop.credentials import resolve_key

        self.ref, self.model, self.task = ref, model, task
        key = resolve_key("replicate", user=user)
        self._retry_after = threading.local()
        self._client = Client(
            api_token=key.value if key else "",
            base_url=base_url,
            event_hooks={"response": [self._remember_retry_after]},
        )
        self._client.poll_interval = poll_interval_s

    def _remember_retry_after(self, response: httpx.Response) -> None:
        self._retry_after.value = response.headers.get("retry-after")

    def generate(
        self, model_input: ModelInput, params: dict[str, Any], ctx: CallContext
    ) -> ModelOutput:
        import httpx
        from replicate.exceptions import ReplicateError

        p = ReplicateParams.model_validate(params)
        inputs = {**p.input, **self._loop_input(model_input, p)}
        started = time.monotonic()
        try:
            prediction = self._create(inputs, p.timeout_s)
            while prediction.status not in _TERMINAL:
                if time.monotonic() - started > p.timeout_s:
                    prediction.cancel()
                    raise Timeout(f"no result in {p.timeout_s:g}s", model=self.ref)
                time.sleep(self._client.poll_interval)
                prediction.reload()
        except ReplicateError as exc:
            raise self._typed(exc) from None
        except httpx.TimeoutException as exc:
            raise Timeout(f"no answer in time: {exc}", model=self.ref) from None
        except httpx.TransportError as exc:
            raise Unavailable(f"cannot reach Replicate: {exc}", model=self.ref) from None
        except ValueError as exc:  # the client could not parse a response body
            raise InvalidOutput(f"malformed response: {exc}", model=self.ref) from None
        return self._output(prediction)

    def _loop_input(self, model_input: ModelInput, p: ReplicateParams) -> dict[str, Any]:
        if model_input.type == "text" and model_input.text is not None:
            return {p.prompt_field: p.prefix + model_input.text + p.suffix}
        if model_input.type == "image" and model_input.data:
            return {p.image_field: data_url(model_input.data)}
        if model_input.type == "audio" and model_input.data:
            try:
                facts = audio_facts(model_input.data)
            except UndecodableAudio as exc:
                raise InvalidInput(f"not readable audio: {exc}", model=self.ref) from None
            return {p.audio_field: data_url(model_input.data, facts.media_type)}
        raise InvalidInput(f"no {model_input.type} input to send", model=self.ref)

    def _create(self, inputs: dict[str, Any], timeout_s: float) -> Prediction:
        wait = max(1, min(60, int(timeout_s)))  # Replicate holds the request up to 60 s
        owner_name, _, version = self.model.partition(":")
        if version:
            return self._client.predictions.create(version=version, input=inputs, wait=wait)
        owner, name = owner_name.split("/", 1)
        return self._client.models.predictions.create(model=(owner, name), input=inputs, wait=wait)

    def _output(self, prediction: Prediction) -> ModelOutput:
        if prediction.status == "failed":
            message = str(prediction.error or "the prediction failed")
            if _FILTERED.search(message):
                raise ContentFiltered(message, model=self.ref)
            raise InvalidInput(f"the model failed on this input: {message}", model=self.ref)
        if prediction.status == "canceled":
            raise Unavailable("the prediction was canceled", model=self.ref)
        usage: dict[str, Any] = {"prediction_id": prediction.id}
        if prediction.metrics and "predict_time" in prediction.metrics:
            usage["predict_time_s"] = prediction.metrics["predict_time"]
        output = prediction.output
        kind = TASK_IO[self.task][1]
        if kind != "text":
            url = _file_url(output)
            if url is None:
                raise InvalidOutput(f"the prediction has no {kind} output", model=self.ref)
            data = self._download(url)
            if kind == "audio":
                return audio_output(data, self.ref, usage)
            return ModelOutput("image", data=checked_image(data, self.ref), usage=usage)
        text = _text_of(output)
        if not text.strip():
            raise InvalidOutput("the prediction has no text output", model=self.ref)
        return ModelOutput("text", text=text.strip(), usage=usage)

    def _download(self, url: str) -> bytes:
        """Fetch an output now: its URL expires within the hour, the blob does not."""
        import httpx

        if url.startswith("data:"):
            return decode_data_url(url)
        try:
            response = httpx.get(url, timeout=60, follow_redirects=True)
        except httpx.HTTPError as exc:
            raise Unavailable(f"cannot download the output: {exc}", model=self.ref) from None
        if response.status_code in (403, 404, 410):
            # A new prediction makes new URLs: retrying the step can help.
            raise Unavailable(
                f"the output URL has expired or is gone ({response.status_code})", model=self.ref
            )
        if response.status_code >= 400:
            raise Unavailable(f"output download failed ({response.status_code})", model=self.ref)
        return response.content

    def _typed(self, exc: Any) -> ModelError:
        status = exc.status or 0
        message = f"{status}: {exc.title or ''} {exc.detail or ''}".strip()
        if status in (401, 403):
            return AuthError(message, model=self.ref)
        if status == 402:
            return QuotaExceeded(message, model=self.ref)
        if status == 429:
            return RateLimited(message, retry_after=self._last_retry_after(), model=self.ref)
        if status >= 500:
            return Unavailable(message, model=self.ref)
        return InvalidInput(message, model=self.ref)

    def _last_retry_after(self) -> float | None:
        header = getattr(self._retry_after, "value", None)
        try:
            return float(header) if header is not None else None
        except ValueError:
            return None


#: Where models that answer with an object put their file or their words (MusicGen-style models
#: answer with a bare URL; Whisper with {"transcription", "segments", ...}).
_FILE_KEYS = ("audio_out", "audio", "image", "output", "file")
_TEXT_KEYS = ("transcription", "text", "output", "caption")


def _file_url(output: Any) -> str | None:
    if isinstance(output, dict):
        output = next((output[k] for k in _FILE_KEYS if output.get(k)), None)
    first = output[0] if isinstance(output, list) and output else output
    return first if isinstance(first, str) and first else None


def _text_of(output: Any) -> str:
    if isinstance(output, dict):
        output = next((output[k] for k in _TEXT_KEYS if isinstance(output.get(k), str)), "")
    # Language models stream tokens: the output is a list of pieces to join.
    return "".join(map(str, output)) if isinstance(output, list) else str(output or "")


def create(info: ModelInfo, ctx: AdapterContext) -> ReplicateAdapter:
    return ReplicateAdapter(info.ref, info.model_id, info.task, ctx.base_url, ctx.settings.user)
