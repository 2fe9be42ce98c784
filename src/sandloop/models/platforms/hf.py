"""``hf:``: Hugging Face Inference, any task the catalog knows, by hub id."""

from __future__ import annotations

from pydantic import Field

from sandloop.models.io_types import TASK_IO
from sandloop.models.params import PlatformParams
from sandloop.models.platforms.base import Platform
from sandloop.models.platforms.local import HUB_ID


class HFParams(PlatformParams):
    prefix: str = Field("", description="text put before a text input")
    suffix: str = Field("", description="text put after a text input")
    max_new_tokens: int = Field(128, ge=1, le=32_768, description="text-generation only")
    temperature: float | None = Field(None, ge=0, le=5, description="text-generation only")
    prompt: str = Field("", description="image-to-image: what to make of the image")
    candidate_labels: list[str] = Field(
        default_factory=list, description="zero-shot-classification: the labels to choose from"
    )
    timeout_s: float = Field(120.0, gt=0, le=3600, description="seconds to wait for an answer")


def _hub_id(name: str) -> bool:
    return bool(HUB_ID.match(name))


PLATFORM = Platform(
    name="hf",
    tasks=dict.fromkeys(TASK_IO, HFParams),
    adapter="sandloop.models.hf_inference:create",
    default_task="text-generation",
    cost_hint="by Hugging Face",
    key_env="HF_TOKEN",
    base_url_setting="hf_base_url",
    matches=_hub_id,
    naming="Hugging Face models are named by hub id 'org/name'",
)
