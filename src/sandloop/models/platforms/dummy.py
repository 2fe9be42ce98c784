"""``dummy:``: deterministic, seeded stand-ins for every I/O pair, for tests and demos."""

from __future__ import annotations

from pydantic import Field

from sandloop.models.params import FailureKind, PlatformParams
from sandloop.models.platforms.base import Platform


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


class DummyAudioParams(DummyParams):
    """Its own class, so the sound's parameters change no key of the other dummy tasks."""

    sample_rate: int = Field(
        16_000, ge=8_000, le=48_000, description="of generated sound, in Hz (8000 to 48000)"
    )


PLATFORM = Platform(
    name="dummy",
    tasks={
        **{t: DummyParams for t in ("text-generation", "text-to-image", "image-to-text")},
        "image-to-image": DummyParams,
        "text-to-speech": DummyAudioParams,
        "automatic-speech-recognition": DummyParams,
    },
    adapter="sandloop.models.dummy:create",
    sovereign=True,
)
