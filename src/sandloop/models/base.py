"""The one protocol every platform adapter speaks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from sandloop.models.io_types import IOType

if TYPE_CHECKING:
    from sandloop.config import Settings
    from sandloop.models.registry import ModelInfo


@dataclass(frozen=True)
class ModelInput:
    """What a step feeds a model: text, or an image's or a sound's bytes (read from the blob
    store)."""

    type: IOType
    text: str | None = None
    data: bytes | None = None
    # A dialogue turn: the conversation from the speaker's side. Chat models read this; the
    # others read ``text``, the same conversation as a transcript.
    messages: tuple[dict[str, str], ...] | None = None


@dataclass(frozen=True)
class ModelOutput:
    type: IOType
    text: str | None = None
    data: bytes | None = None
    usage: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)  # merged into the step's metadata


@dataclass(frozen=True)
class CallContext:
    """Per-call facts an adapter may need: a seed that is stable across resumes, and the step key
    (the dummy platform counts its injected failures per step)."""

    seed: int | None
    step_key: str
    index: int = 0  # which call of this facet in its thread (a dialogue actor's turn count)
    # Text pieces as the model writes them, for an adapter that can stream (see streaming.py).
    on_text: Callable[[str], None] | None = field(default=None, compare=False, repr=False)


class ModelAdapter(Protocol):
    ref: str

    def generate(
        self, model_input: ModelInput, params: dict[str, Any], ctx: CallContext
    ) -> ModelOutput: ...


@dataclass(frozen=True)
class AdapterContext:
    """What a platform's builder gets besides the model: the settings, its endpoint, a way to
    say what is slow (a first load), and the factory itself, for adapters made of others
    (routes, recipes)."""

    settings: Settings
    base_url: str | None = None
    announce: Callable[[str], None] = field(default=lambda _m: None, compare=False)
    adapter_for: Callable[[ModelInfo], ModelAdapter] | None = field(default=None, compare=False)

    def adapter(self, info: ModelInfo) -> ModelAdapter:
        if self.adapter_for is None:
            raise RuntimeError("this adapter needs the factory: build it with get_adapter")
        return self.adapter_for(info)
