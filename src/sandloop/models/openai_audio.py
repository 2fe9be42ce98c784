"""The openai platform's speech: text→audio through the Audio API's speech endpoint, and
audio→text through its transcriptions, from OpenAI or a compatible server (Speaches, LocalAI).

Only WAV, FLAC and MP3 are asked for, the formats a later step can decode; a sound is checked
before it is sent, so a step holding bytes that are not audio fails here with its reason rather
than as a 400 from the endpoint. The API's own limit on a transcribed file (25 MB) is checked
here too: a retry could not change it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sandloop.models.audio import UndecodableAudio, audio_facts, audio_output
from sandloop.models.base import AdapterContext, CallContext, ModelInput, ModelOutput
from sandloop.models.errors import InvalidInput, InvalidOutput, from_openai
from sandloop.models.openai_chat import openai_client
from sandloop.models.platforms.openai import OpenAISpeechParams, OpenAITranscriptionParams

if TYPE_CHECKING:
    from openai.types.audio import Transcription

    from sandloop.models.registry import ModelInfo

MAX_UPLOAD_BYTES = 25 * 1024 * 1024
EXTENSIONS = {"audio/wav": "wav", "audio/flac": "flac", "audio/mpeg": "mp3"}


class _AudioAPIAdapter:
    def __init__(self, ref: str, model: str, base_url: str | None, user: str | None = None) -> None:
        self.ref = ref
        self.model = model
        self._client = openai_client(base_url, user)


class OpenAISpeechAdapter(_AudioAPIAdapter):
    def generate(
        self, model_input: ModelInput, params: dict[str, Any], ctx: CallContext
    ) -> ModelOutput:
        import openai

        p = OpenAISpeechParams.model_validate(params)
        if model_input.text is None:
            raise InvalidInput("text-to-speech takes text", model=self.ref)
        text = model_input.text[-p.max_input_chars :].strip()
        if not text:
            raise InvalidInput("text-to-speech needs words to sound", model=self.ref)
        extra: dict[str, Any] = {"instructions": p.instructions} if p.instructions else {}
        try:
            response = self._client.audio.speech.create(
                model=self.model,
                voice=p.voice,
                input=text,
                response_format=p.format,
                speed=p.speed,
                timeout=p.timeout_s,
                **extra,
            )
        except openai.OpenAIError as exc:
            raise from_openai(exc, self.ref) from None
        return audio_output(response.content, self.ref, {"input_chars": len(text)})


class OpenAITranscriptionAdapter(_AudioAPIAdapter):
    def generate(
        self, model_input: ModelInput, params: dict[str, Any], ctx: CallContext
    ) -> ModelOutput:
        import openai

        p = OpenAITranscriptionParams.model_validate(params)
        if model_input.data is None:
            raise InvalidInput("speech recognition takes audio", model=self.ref)
        sound = model_input.data
        try:
            facts = audio_facts(sound)
        except UndecodableAudio as exc:
            raise InvalidInput(f"not readable audio: {exc}", model=self.ref) from None
        if len(sound) > MAX_UPLOAD_BYTES:
            raise InvalidInput(
                f"the sound is {len(sound) / 2**20:.1f} MB; the transcriptions API takes at most "
                "25 MB (shorten it, or speak it as MP3)",
                model=self.ref,
            )
        extra: dict[str, Any] = {"language": p.language} if p.language else {}
        if p.prompt:
            extra["prompt"] = p.prompt
        try:
            response = self._client.audio.transcriptions.create(
                model=self.model,
                file=(f"input.{EXTENSIONS[facts.media_type]}", sound, facts.media_type),
                response_format="json",
                temperature=p.temperature,
                timeout=p.timeout_s,
                **extra,
            )
        except openai.OpenAIError as exc:
            raise from_openai(exc, self.ref) from None
        text = response.text.strip()
        if not text:
            raise InvalidOutput("the model heard no words", model=self.ref)
        return ModelOutput("text", text=text, usage=_usage(response, facts.duration_s))


def _usage(response: Transcription, seconds: float) -> dict[str, Any]:
    """What the call is billed by: seconds of sound, or tokens (gpt-4o transcribe models)."""
    usage: dict[str, Any] = {"input_seconds": seconds}
    billed = response.usage
    if billed is not None and billed.type == "tokens":
        usage["input_tokens"] = billed.input_tokens
        usage["output_tokens"] = billed.output_tokens
    elif billed is not None:
        usage["input_seconds"] = billed.seconds
    return usage


def create_speech(info: ModelInfo, ctx: AdapterContext) -> OpenAISpeechAdapter:
    return OpenAISpeechAdapter(info.ref, info.model_id, ctx.base_url, ctx.settings.user)


def create_transcription(info: ModelInfo, ctx: AdapterContext) -> OpenAITranscriptionAdapter:
    return OpenAITranscriptionAdapter(info.ref, info.model_id, ctx.base_url, ctx.settings.user)
