"""Adapters by model reference, created lazily and reused for the life of the process.

Each platform names the function that builds its adapter; it is imported here on first use, so
a process that never calls a platform never imports its client library."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from sandloop.config import Settings
from sandloop.models.base import AdapterContext, ModelAdapter
from sandloop.models.platforms import PLATFORMS
from sandloop.models.registry import ModelInfo, catalog_for

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
    platform = PLATFORMS.get(info.platform)
    if platform is None:
        raise ValueError(f"no adapter for platform {info.platform!r}")
    module, _, name = platform.adapter_for(info.task).partition(":")
    build = getattr(importlib.import_module(module), name)
    base_url = getattr(settings, platform.base_url_setting) if platform.base_url_setting else None
    ctx = AdapterContext(
        settings, base_url, announce, lambda other: get_adapter(other, settings, announce)
    )
    adapter: ModelAdapter = build(info, ctx)
    return adapter


def prepare_models(
    refs: list[str], settings: Settings, announce: Callable[[str], None] = lambda _m: None
) -> None:
    """Create adapters and load local weights before the flow starts, so the first step is not
    slowed by a load and a missing model fails before anything is recorded."""
    catalog = catalog_for(settings)
    for ref in dict.fromkeys(refs):
        if ref.startswith(("route:", "recipe:")):
            continue  # a route loads a candidate when it tries it: a broken one is a fallback
        adapter = get_adapter(catalog.lookup(ref), settings, announce)
        load = getattr(adapter, "load", None)
        if load is not None:
            announce(f"loading {ref}…")
            load()
