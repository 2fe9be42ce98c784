"""Resolving a model ref, as every model call does, now that the catalog is passed.

A model call resolves its ref from its settings (``catalog_for(settings).lookup``): a stat of the
home's models file and a cached catalog. This compares that with the dict lookup the old global
catalog amounted to, and times checking a network spec against a passed catalog.

    .venv/bin/python benchmarks/bench_catalog.py
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

CALLS = 20_000
MODELS = """
models:
  - ref: openai:house
    source: gpt-4o-mini
routes:
  fast:
    candidates: [dummy:text, openai:house]
"""
NETWORK = {
    "name": "trio",
    "models": ["dummy:text", {"model": "openai:house", "params": {"temperature": 0.5}}],
}


def per_call(call: Callable[[], object], calls: int = CALLS) -> float:
    """Best of 3, in microseconds per call."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(calls):
            call()
        best = min(best, time.perf_counter() - started)
    return best / calls * 1e6


def main() -> None:
    from sandloop.config import Settings
    from sandloop.loops.network.spec import NetworkSpec
    from sandloop.models.registry import catalog_for, spec_context

    home = Path(tempfile.mkdtemp(prefix="sandloop-bench-catalog-"))
    (home / "models.yaml").write_text(MODELS, encoding="utf-8")
    settings = Settings(home=home)
    catalog = catalog_for(settings)
    models = catalog.models

    bare = per_call(lambda: models["openai:house"])
    ours = per_call(lambda: catalog_for(settings).lookup("openai:house"))
    context = spec_context(catalog)
    spec = per_call(lambda: NetworkSpec.model_validate(NETWORK, context=context), 2_000)
    print(f"{CALLS} lookups of a models-file alias, best of 3")
    print(f"dict lookup in a built catalog:          {bare:8.2f} us")
    print(f"catalog_for(settings).lookup(ref):       {ours:8.2f} us | ratio {ours / bare:.0f}x")
    print(f"check a 2-model network spec (context):  {spec:8.2f} us")


if __name__ == "__main__":
    main()
