"""llama.cpp against transformers for local text: a 20-step sandloop run of Gemma 3 270M on
``llamacpp:`` and on ``local:``, in one process, with the same prompts and sampling, then a bare
llama-cpp-python loop over the first run's prompts.

Reported: tokens written per second of model time, per-step latency (the recorded ``latency_ms``:
the whole Prefect task), and each platform's first step, which carries its one model load. The
ratios are llamacpp over local (the speed-up) and sandloop over bare llama.cpp (the overhead).
Needs the llamacpp extra (`make setup-llamacpp`).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import _common  # noqa: F401 - quiet Prefect settings

STEPS, NEW_TOKENS = 20, 40
PARAMS = {
    "prefix": "Describe the following in one vivid sentence.\nText: ",
    "suffix": "\nDescription:",
    "temperature": 0.8,
    "max_new_tokens": NEW_TOKENS,
}


def spec(model: str) -> Any:
    from sandloop.loops.network.spec import RunSpec

    return RunSpec.model_validate(
        {
            "network": {"name": "speed", "models": [{"model": model, "params": PARAMS}]},
            "genesis": "a red balloon",
            "seed": 1,
            "stop": {"max_steps": STEPS, "stop_on_repeat": False},
        }
    )


def run(model: str, home: Path) -> tuple[Any, float]:
    from sandloop import api

    api.prepare_models(spec(model), home)  # loads (and converts) before the clock starts
    start = time.perf_counter()
    summary = api.run_network(spec(model), home)
    wall = time.perf_counter() - start
    return api.run_steps(summary.thread, home), wall


def tokens_per_s(steps: Any) -> float:
    written = sum(json.loads(m)["usage"]["output_tokens"] for m in steps["metadata"])
    return float(written / (steps["latency_ms"].sum() / 1000))


def report(name: str, steps: Any, wall: float) -> float:
    latency = steps["latency_ms"].tolist()
    median = statistics.median(latency[1:])
    print(
        f"{name:<24} {tokens_per_s(steps):6.1f} tok/s  step 1 {latency[0]:6.0f} ms  "
        f"steps 2..{STEPS} median {median:5.0f} ms  (run wall {wall:.1f} s)"
    )
    return median


def main() -> None:
    from llama_cpp import Llama
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    from sandloop.config import Settings
    from sandloop.models.gemma import ensure_gemma_folder, packaged_gguf
    from sandloop.models.llamacpp import CONTEXT_TOKENS

    models = Settings().models_path
    os.environ["SANDLOOP_GEMMA_FOLDER"] = str(ensure_gemma_folder(models, print))
    os.environ["SANDLOOP_EMBED_DURING_RUNS"] = "false"
    home = Path(tempfile.mkdtemp())
    threads = len(os.sched_getaffinity(0))
    print(
        f"{STEPS} steps of Gemma 3 270M, temperature 0.8, up to {NEW_TOKENS} tokens, "
        f"{threads} threads"
    )
    with (
        prefect_test_harness(server_startup_timeout=120),
        temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}),
    ):
        fast, fast_wall = run("llamacpp:gemma-3-270m", home)
        slow, slow_wall = run("local:gemma-3-270m", home)
    fast_median = report("sandloop llamacpp:", fast, fast_wall)
    slow_median = report("sandloop local:", slow, slow_wall)

    llm = Llama(
        model_path=str(packaged_gguf(models)),
        n_ctx=CONTEXT_TOKENS,
        n_threads=threads,
        verbose=False,
    )
    bare, written = [], 0
    for seed, text in enumerate(fast["input"]):  # the llamacpp run's prompts, in its order
        start = time.perf_counter()
        llm.reset()
        done = llm.create_completion(
            PARAMS["prefix"] + text + PARAMS["suffix"],
            max_tokens=NEW_TOKENS,
            temperature=0.8,
            top_p=0.95,
            top_k=40,
            repeat_penalty=1.15,
            seed=seed,
        )
        bare.append((time.perf_counter() - start) * 1000)
        written += done["usage"]["completion_tokens"]
    bare_median = statistics.median(bare[1:])
    print(
        f"{'bare llama-cpp-python':<24} {written / (sum(bare) / 1000):6.1f} tok/s  "
        f"calls 2..{STEPS} median {bare_median:5.0f} ms"
    )
    speedup = tokens_per_s(fast) / tokens_per_s(slow)
    print(f"llamacpp/local: {speedup:.1f}x tokens/s, {slow_median / fast_median:.1f}x per step")
    print(f"ratio sandloop llamacpp/bare per step: {fast_median / bare_median:.2f}x")


if __name__ == "__main__":
    main()
