"""Parameters each platform accepts in a network entry.

They are pydantic models with ``extra="forbid"`` so that a typo in a spec (``temprature``) is an
error naming the field, not a silently ignored key. The validated, defaults-filled dict is what
gets hashed into the invocation key, so two specs that mean the same call share keys.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

FailureKind = Literal["unavailable", "timeout", "rate_limited", "auth", "invalid_input"]


class PlatformParams(BaseModel):
    """Strict like the specs they sit in: ``vocab: true`` is not 1, and numbers are finite."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, strict=True, allow_inf_nan=False, str_max_length=100_000
    )


class DummyParams(PlatformParams):
    vocab: int = Field(
        1000, ge=1, le=1_000_000, description="distinct outputs; small values make loops repeat"
    )
    fail_times: int = Field(
        0, ge=0, description="fail this many calls per step before succeeding (for tests)"
    )
    fail_with: FailureKind = Field("unavailable", description="the failure type to raise")
    image_size: int = Field(32, ge=1, le=1024, description="side of generated images in pixels")
    delay_ms: float = Field(0.0, ge=0, le=60_000, description="simulated model latency")
    script: list[str] = Field(
        default_factory=list,
        description="answer these in turn (by the call's index) instead of generating",
    )
    temperature: float = Field(0.7, ge=0, le=5, description="recorded; the dummy ignores it")


class LocalTextParams(PlatformParams):
    prefix: str = Field("", description="text put before the input")
    suffix: str = Field("", description="text put after the input")
    temperature: float = Field(0.7, ge=0, le=5, description="0 means greedy decoding")
    top_p: float = Field(0.95, gt=0, le=1)
    max_new_tokens: int = Field(40, ge=1, le=4096)
    repetition_penalty: float = Field(1.15, ge=1, le=3)
    max_input_chars: int = Field(
        2000, ge=16, description="keep only the input's last N characters (loops grow)"
    )


class OpenAIChatParams(PlatformParams):
    system: str = Field("", description="system message; empty for none")
    prefix: str = Field("", description="text put before the input in the user message")
    suffix: str = Field("", description="text put after the input in the user message")
    temperature: float = Field(0.7, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    max_tokens: int = Field(256, ge=1, le=32_768)
    timeout_s: float = Field(60.0, gt=0, le=3600, description="seconds to wait for an answer")


class LocalLabelParams(PlatformParams):
    """fill-mask, text-classification and zero-shot-classification: the output is a label (or
    the input with its mask filled), so a loop of them is a loop of words."""

    prefix: str = Field("", description="text put before the input")
    suffix: str = Field("", description="text put after the input")
    max_input_chars: int = Field(2000, ge=16, description="keep only the input's last N characters")
    candidate_labels: list[str] = Field(
        default_factory=list, description="zero-shot-classification: the labels to choose from"
    )


class LocalCaptionParams(PlatformParams):
    temperature: float = Field(0.0, ge=0, le=5, description="0 means greedy decoding")
    top_p: float = Field(0.95, gt=0, le=1)
    max_new_tokens: int = Field(30, ge=1, le=1024)


class OpenAIImageParams(PlatformParams):
    prefix: str = Field("", description="text put before the input in the image prompt")
    suffix: str = Field("", description="text put after the input in the image prompt")
    size: str = Field("1024x1024", pattern=r"^(auto|\d+x\d+)$")
    quality: str | None = Field(None, description="e.g. standard, hd, low, high (model-specific)")
    timeout_s: float = Field(120.0, gt=0, le=3600, description="seconds to wait for an answer")


class ReplicateParams(PlatformParams):
    """Replicate models each have their own input schema: name the field the loop's text or
    image goes to, and give any other inputs literally."""

    prefix: str = Field("", description="text put before a text input")
    suffix: str = Field("", description="text put after a text input")
    prompt_field: str = Field("prompt", description="the input field that receives text")
    image_field: str = Field("image", description="the input field that receives an image")
    input: dict[str, Any] = Field(default_factory=dict, description="other model inputs")
    timeout_s: float = Field(300.0, gt=0, le=3600, description="seconds to wait for a prediction")


class HFParams(PlatformParams):
    prefix: str = Field("", description="text put before a text input")
    suffix: str = Field("", description="text put after a text input")
    max_new_tokens: int = Field(128, ge=1, le=32_768, description="text-generation only")
    temperature: float | None = Field(None, ge=0, le=5, description="text-generation only")
    candidate_labels: list[str] = Field(
        default_factory=list, description="zero-shot-classification: the labels to choose from"
    )
    timeout_s: float = Field(120.0, gt=0, le=3600, description="seconds to wait for an answer")
