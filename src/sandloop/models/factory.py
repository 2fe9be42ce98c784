"""Adapters by model reference, created lazily and reused for the life of the process.

Each platform names the function that builds its adapter; it is imported here on first use, so
a process that never calls a platform never imports its client library."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable

from sandloop.config import Settings
from sandloop.errors import SandloopError
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


class MissingKey(SandloopError):
    """A model on a platform's own endpoint, and no key for it anywhere."""


def check_key(info: ModelInfo, settings: Settings) -> None:
    """A platform's public endpoint refuses every call without a key: say so before the run
    starts rather than at its first step. An endpoint the user set (Ollama, vLLM, a proxy) may
    take none, so it is not asked about."""
    from sandloop.credentials import resolve_key

    platform = PLATFORMS.get(info.platform)
    if platform is None or platform.key_env is None or platform.base_url_setting is None:
        return
    endpoint = getattr(settings, platform.base_url_setting)
    if endpoint != Settings.model_fields[platform.base_url_setting].default:
        return
    if platform.name == "openai" and os.environ.get("OPENAI_BASE_URL"):
        return  # the official client's own variable: the client goes there
    if resolve_key(platform.name, user=settings.user) is None:
        raise MissingKey(
            f"{info.ref} needs an API key for {platform.name}, and none is set: "
            f"`sandloop keys set {platform.name}`, or set {platform.key_env}"
        )


def prepare_models(
    refs: list[str], settings: Settings, announce: Callable[[str], None] = lambda _m: None
) -> None:
    """Create adapters and load local weights before the flow starts, so the first step is not
    slowed by a load, and a missing model or key fails before anything is recorded."""
    catalog = catalog_for(settings)
    for ref in dict.fromkeys(refs):
        if ref.startswith(("route:", "recipe:")):
            continue  # a route loads a candidate when it tries it: a broken one is a fallback
        info = catalog.lookup(ref)
        check_key(info, settings)
        adapter = get_adapter(info, settings, announce)
        load = getattr(adapter, "load", None)
        if load is not None:
            announce(f"loading {ref}…")
            load()
