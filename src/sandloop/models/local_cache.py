"""Local models loaded once per process: loading a model costs far more than a step with it, so
every local adapter (text, labels, captions, speech) shares this cache, keyed by what was loaded
from where onto which device."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sandloop.models.errors import NotLoadable
from sandloop.models.hub_reach import load_from, unreachable_model

_CACHE: dict[tuple[str, str, str], Any] = {}
_CACHE_LOCK = threading.Lock()


def cached(kind: str, source: str, device: str, load: Callable[[str], Any]) -> Any:
    """``load(where)``'s result for (kind, source, device), loading it on first use from where
    `hub_reach.load_from` says. A model that cannot be loaded (a missing folder, a config
    transformers does not know) is NotLoadable: no retry makes it loadable."""
    with _CACHE_LOCK:
        key = (kind, source, device)
        if key not in _CACHE:
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # a per-load weights bar would break the CLI's display
            if (why := unreachable_model(source)) is not None:
                raise NotLoadable(f"cannot load local model {source!r}: {why}")
            try:
                _CACHE[key] = load(load_from(source))
            except (OSError, ValueError) as exc:
                raise NotLoadable(f"cannot load local model {source!r}: {exc}") from None
        return _CACHE[key]


def load_pipeline(task: str, source: str, device: str) -> Any:
    def load(where: str) -> Any:
        from transformers import pipeline

        make: Any = pipeline  # typed per literal task name; ours is a runtime string
        return make(task, model=where, device=device)

    return cached(task, source, device, load)


class PipelineModel:
    """What every pipeline-driven local adapter holds: which model, for which task, on which
    device, loaded once through the shared cache."""

    def __init__(self, ref: str, source: str | Path, task: str, device: str = "cpu") -> None:
        self.ref, self.source, self.task, self.device = ref, str(source), task, device

    def load(self) -> None:
        self.pipeline()

    def pipeline(self) -> Any:
        return load_pipeline(self.task, self.source, self.device)
