"""``replicate:``: models on Replicate, each with its own input schema, so a ref says its task."""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field

from sandloop.models.params import PlatformParams
from sandloop.models.platforms.base import Platform

_REPLICATE_ID = re.compile(r"^[\w.\-]+/[\w.\-]+(:[0-9a-f]{8,64})?$")


class ReplicateParams(PlatformParams):
    """Replicate models each have their own input schema: name the field the loop's text, image
    or sound goes to, and give any other inputs literally."""

    prefix: str = Field("", description="text put before a text input")
    suffix: str = Field("", description="text put after a text input")
    prompt_field: str = Field("prompt", description="the input field that receives text")
    image_field: str = Field("image", description="the input field that receives an image")
    audio_field: str = Field("audio", description="the input field that receives a sound")
    input: dict[str, Any] = Field(default_factory=dict, description="other model inputs")
    timeout_s: float = Field(300.0, gt=0, le=3600, description="seconds to wait for a prediction")


def _model_id(name: str) -> bool:
    return bool(_REPLICATE_ID.match(name))


PLATFORM = Platform(
    name="replicate",
    tasks={
        t: ReplicateParams
        for t in (
            "text-generation",
            "text-to-image",
            "image-to-text",
            "image-to-image",
            "text-to-speech",
            "text-to-audio",
            "automatic-speech-recognition",
        )
    },
    adapter="sandloop.models.replicate_adapter:create",
    cost_hint="by Replicate",
    key_env="REPLICATE_API_TOKEN",
    base_url_setting="replicate_base_url",
    matches=_model_id,
    naming="Replicate models are named 'owner/name[:version]@task'",
)
