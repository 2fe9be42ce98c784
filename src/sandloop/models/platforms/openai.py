"""``openai:``: OpenAI and any OpenAI-compatible endpoint (Ollama, vLLM, llama.cpp's server)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from sandloop.models.params import PlatformParams
from sandloop.models.platforms.base import Platform


class OpenAIChatParams(PlatformParams):
    system: str = Field("", description="system message; empty for none")
    prefix: str = Field("", description="text put before the input in the user message")
    suffix: str = Field("", description="text put after the input in the user message")
    temperature: float = Field(0.7, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    max_tokens: int = Field(256, ge=1, le=32_768)
    timeout_s: float = Field(60.0, gt=0, le=3600, description="seconds to wait for an answer")


class OpenAIImageParams(PlatformParams):
    prefix: str = Field("", description="text put before the input in the image prompt")
    suffix: str = Field("", description="text put after the input in the image prompt")
    size: str = Field("1024x1024", pattern=r"^(auto|\d+x\d+)$")
    quality: str | None = Field(None, description="e.g. standard, hd, low, high (model-specific)")
    timeout_s: float = Field(120.0, gt=0, le=3600, description="seconds to wait for an answer")


class OpenAIImageEditParams(PlatformParams):
    """image-to-image: the step's image, changed as the prompt says."""

    prompt: str = Field(
        "Redraw this image in a different style.", min_length=1, description="the edit to make"
    )
    size: str = Field("1024x1024", pattern=r"^(auto|\d+x\d+)$")
    quality: str | None = Field(None, description="e.g. standard, low, high (model-specific)")
    timeout_s: float = Field(120.0, gt=0, le=3600, description="seconds to wait for an answer")


class OpenAISpeechParams(PlatformParams):
    """text-to-speech through the Audio API (gpt-4o-mini-tts, tts-1)."""

    voice: str = Field("alloy", min_length=1, description="e.g. alloy, ash, coral, nova, sage")
    format: Literal["wav", "flac", "mp3"] = Field("wav", description="the sound file's format")
    speed: float = Field(1.0, ge=0.25, le=4)
    instructions: str = Field("", description="how to speak (gpt-4o-mini-tts only); empty: none")
    max_input_chars: int = Field(
        4096, ge=1, le=4096, description="read only the input's last N characters (at most 4096)"
    )
    timeout_s: float = Field(60.0, gt=0, le=3600, description="seconds to wait for an answer")


class OpenAITranscriptionParams(PlatformParams):
    """automatic-speech-recognition through the Audio API (gpt-4o-mini-transcribe, whisper-1)."""

    language: str | None = Field(None, description="ISO-639-1 code, e.g. en; None: detected")
    prompt: str = Field("", description="text to guide the words or style; empty: none")
    temperature: float = Field(0.0, ge=0, le=1)
    timeout_s: float = Field(120.0, gt=0, le=3600, description="seconds to wait for an answer")


def _any_name(name: str) -> bool:
    return bool(name)  # endpoints serve models by whatever names they like


PLATFORM = Platform(
    name="openai",
    tasks={
        "text-generation": OpenAIChatParams,
        "image-to-text": OpenAIChatParams,
        "text-to-image": OpenAIImageParams,
        "image-to-image": OpenAIImageEditParams,
        "text-to-speech": OpenAISpeechParams,
        "automatic-speech-recognition": OpenAITranscriptionParams,
    },
    adapter="sandloop.models.openai_chat:create",
    adapter_by_task={
        "text-to-image": "sandloop.models.openai_image:create",
        "image-to-image": "sandloop.models.openai_image:create_edit",
        "text-to-speech": "sandloop.models.openai_audio:create_speech",
        "automatic-speech-recognition": "sandloop.models.openai_audio:create_transcription",
    },
    default_task="text-generation",
    cost_hint="per token, by the endpoint",
    key_env="OPENAI_API_KEY",
    base_url_setting="openai_base_url",
    matches=_any_name,
)
