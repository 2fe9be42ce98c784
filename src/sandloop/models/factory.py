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

        return DummyAdapter(info.ref, info.task)
    if info.platform == "local":
        return _local(info, settings, announce)
    if info.platform == "recipe":
        from sandloop.models.recipe_node import RecipeNodeAdapter

        return RecipeNodeAdapter(info.ref, info.name, settings, get_adapter)
    if info.platform == "route":
        from sandloop.models.registry import route
        from sandloop.models.router import RouterAdapter

        return RouterAdapter(
            info.ref, route(info.name), lambda candidate: get_adapter(candidate, settings, announce)
        )
    if info.platform == "openai":
        if info.task == "text-to-image":
            from sandloop.models.openai_image import OpenAIImageAdapter

            return OpenAIImageAdapter(
                info.ref, info.model_id, settings.openai_base_url, settings.user
            )
        from sandloop.models.openai_chat import OpenAIChatAdapter

        return OpenAIChatAdapter(info.ref, info.model_id, settings.openai_base_url, settings.user)
    if info.platform == "replicate":
        from sandloop.models.replicate_adapter import ReplicateAdapter

        return ReplicateAdapter(
            info.ref, info.model_id, info.task, settings.replicate_base_url, settings.user
        )
    if info.platform == "hf":
        from sandloop.models.hf_inference import HFInferenceAdapter

        return HFInferenceAdapter(
            info.ref, info.model_id, info.task, settings.hf_base_url, settings.user
        )
    raise ValueError(f"no adapter for platform {info.platform!r}")


def _local(info: ModelInfo, settings: Settings, announce: Callable[[str], None]) -> ModelAdapter:
    from sandloop.models import local

    source = info.model_id
    if source == GEMMA_NAME:
        from sandloop.models.gemma import ensure_gemma_folder

        source = str(settings.gemma_folder or ensure_gemma_folder(settings.models_path, announce))
    if info.task in local.LABEL_TASKS:
        return local.LocalLabelAdapter(info.ref, source, info.task, settings.device)
    if info.task == "image-to-text":
        return local.LocalCaptionAdapter(info.ref, source, settings.device)
    if info.task == "text-generation" or info.task in local.SEQ2SEQ_TASKS:
        seq2seq = info.task in local.SEQ2SEQ_TASKS
        return local.LocalTextAdapter(info.ref, source, settings.device, seq2seq=seq2seq)
    raise ValueError(f"the local platform does not do {info.task!r}")


def prepare_models(
    refs: list[str], settings: Settings, announce: Callable[[str], None] = lambda _m: None
) -> None:
    """Create adapters and load local weights before the flow starts, so the first step is not
    slowed by a load and a missing model fails before anything is recorded."""
    from sandloop.models.registry import lookup

    for ref in dict.fromkeys(refs):
        if ref.startswith(("route:", "recipe:")):
            continue  # a route loads a candidate when it tries it: a broken one is a fallback
        adapter = get_adapter(lookup(ref), settings, announce)
        load = getattr(adapter, "load", None)
        if load is not None:
            announce(f"loading {ref}…")
            load()
