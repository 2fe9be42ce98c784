"""``openai:``: OpenAI and any OpenAI-compatible endpoint (Ollama, vLLM, llama.cpp's server)."""

from __future__ import annotations

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


def _any_name(name: str) -> bool:
    return bool(name)  # endpoints serve models by whatever names they like


PLATFORM = Platform(
    name="openai",
    tasks={
        "text-generation": OpenAIChatParams,
        "image-to-text": OpenAIChatParams,
        "text-to-image": OpenAIImageParams,
    },
    adapter="sandloop.models.openai_chat:create",
    adapter_by_task={"text-to-image": "sandloop.models.openai_image:create"},
    default_task="text-generation",
    cost_hint="per token, by the endpoint",
    key_env="OPENAI_API_KEY",
    base_url_setting="openai_base_url",
    matches=_any_name,
)
