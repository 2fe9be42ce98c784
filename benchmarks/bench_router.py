"""Router overhead: a call through `route:NAME` vs the same call on the candidate's adapter.

The route's first two candidates are cooling down and the third answers, so every call pays the
router's full decision path (ordering, two health checks, the decision list, metadata). The
model is the dummy text model, so the difference is all router.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

CALLS = 20_000
MODELS = """
models:
  - ref: dummy:busy-a
    task: text-generation
  - ref: dummy:busy-b
    task: text-generation
routes:
  bench:
    candidates: [dummy:busy-a, dummy:busy-b, dummy:text]
    cooldown_s: 3600
"""


def main() -> None:
    from sandloop.config import Settings
    from sandloop.models import registry
    from sandloop.models.base import CallContext, ModelInput
    from sandloop.models.dummy import DummyAdapter
    from sandloop.models.errors import Unavailable
    from sandloop.models.factory import get_adapter
    from sandloop.models.router import RouterAdapter, RouterHealth

    home = Path(tempfile.mkdtemp())
    (home / "models.yaml").write_text(MODELS)
    settings = Settings(home=home)
    catalog = registry.catalog_for(settings)
    health = RouterHealth()
    for ref in ("dummy:busy-a", "dummy:busy-b"):
        health.record_failure(catalog.lookup(ref), Unavailable("down"), cooldown_s=3600)
    routed = RouterAdapter(
        "route:bench", catalog.route("bench"), catalog, lambda i: get_adapter(i, settings), health
    )
    bare = DummyAdapter("dummy:text")
    params = catalog.lookup("dummy:text").params_model().model_dump()
    inputs = [ModelInput("text", text=f"input {i}") for i in range(CALLS)]
    ctx = CallContext(1, "s")

    def timed(call: object) -> float:
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            for model_input in inputs:
                call(model_input)  # type: ignore[operator]
            best = min(best, time.perf_counter() - started)
        return best

    bare_s = timed(lambda x: bare.generate(x, params, ctx))
    routed_s = timed(lambda x: routed.generate(x, {}, ctx))
    last = routed.generate(inputs[0], {}, ctx).metadata["route"]
    assert last["chosen"] == "dummy:text" and len(last["decisions"]) == 3
    per_call_us = (routed_s - bare_s) / CALLS * 1e6
    print(f"{CALLS} calls, best of 3, two candidates cooling down before the one that answers")
    print(f"bare dummy adapter:  {bare_s / CALLS * 1e6:7.1f} us/call")
    print(f"through the route:   {routed_s / CALLS * 1e6:7.1f} us/call")
    print(f"router overhead:     {per_call_us:7.1f} us/call | ratio {routed_s / bare_s:.2f}x")


if __name__ == "__main__":
    main()
