"""Adapters by model reference, created lazily and reused for the life of the process."""

from __future__ import annotations

from collections.abc import Callable

from sandloop.config import Settings
from sandloop.models.base import ModelAdapter
from sandloop.models.registry import GEMMA_NAME, ModelInfo

_ADAPTERS: dict[tuple[str, str], ModelAdapter] = {}


def get_adapter(
    info: ModelInfo, settings: Settings, announce: Callable[[str], None] = lambda _m: None
) -> ModelAdapter:
    cache_key = (info.ref, str(settings.home))
    adapter = _ADAPTERS.get(cache_key)
    if adapter is None:
        adapter = _create(info, settings, announce)
        _ADAPTERS[cache_key] = adapter
    return adapter


def _create(info: ModelInfo, settings: Settings, announce: Callable[[str], None]) -> ModelAdapter:
    if info.platform == "dummy":
        from sandloop.models.dummy import DummyAdapter

        return DummyAdapter(info.ref)
    if info.platform == "local":
        from sandloop.models.local import LocalTextAdapter

        if info.name == GEMMA_NAME:
            from sandloop.models.gemma import ensure_gemma_folder

            folder = settings.gemma_folder or ensure_gemma_folder(settings.models_path, announce)
            return LocalTextAdapter(info.ref, folder, settings.device)
        return LocalTextAdapter(info.ref, info.name, settings.device)
    if info.platform == "openai":
        from sandloop.models.openai_chat import OpenAIChatAdapter

        return OpenAIChatAdapter(info.ref, info.name, settings.openai_base_url, settings.user)
    raise ValueError(f"no adapter for platform {info.platform!r}")


def prepare_models(
    refs: list[str], settings: Settings, announce: Callable[[str], None] = lambda _m: None
) -> None:
    """Create adapters and load local weights before the flow starts, so the first step is not
    slowed by a load and a missing model fails before anything is recorded."""
    from sandloop.models.registry import lookup

    for ref in dict.fromkeys(refs):
        adapter = get_adapter(lookup(ref), settings, announce)
        source = getattr(adapter, "source", None)
        if source is not None:
            from sandloop.models.local import load_causal_lm

            announce(f"loading {ref}…")
            load_causal_lm(source, settings.device)
