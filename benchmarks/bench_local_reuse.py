"""Local model reuse: a 20-step sandloop run of Gemma 3 270M vs a bare transformers
`pipeline(...)` loop over the same prompts.

Steps 2…N must not reload the model, so per-step latency should match the bare loop. Both are
greedy with the same max_new_tokens; sandloop's per-step latency is the recorded `latency_ms`
(the whole Prefect task: model call, retries machinery, output handling).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import _common  # noqa: F401 - quiet Prefect settings

STEPS, NEW_TOKENS = 20, 20
PREFIX, SUFFIX = "Describe the following in one sentence.\nText: ", "\nDescription:"


def main() -> None:
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness
    from transformers import pipeline

    from sandloop import api
    from sandloop.config import Settings
    from sandloop.loops.network.spec import RunSpec
    from sandloop.models.gemma import ensure_gemma_folder

    folder = ensure_gemma_folder(Settings().models_path, print)
    home = Path(tempfile.mkdtemp())
    run = RunSpec.model_validate(
        {
            "network": {
                "name": "reuse",
                "models": [
                    {
                        "model": "local:gemma-3-270m",
                        "params": {
                            "prefix": PREFIX,
                            "suffix": SUFFIX,
                            "temperature": 0,
                            "max_new_tokens": NEW_TOKENS,
                            "repetition_penalty": 1.0,
                        },
                    }
                ],
            },
            "genesis": "a red balloon",
            "seed": 1,
            "stop": {"max_steps": STEPS, "stop_on_repeat": False},
        }
    )
    import os

    os.environ["SANDLOOP_GEMMA_FOLDER"] = str(folder)
    os.environ["SANDLOOP_EMBED_DURING_RUNS"] = "false"
    with (
        prefect_test_harness(server_startup_timeout=120),
        temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}),
    ):
        start = time.perf_counter()
        summary = api.run_network(run, home)
        ours_wall = time.perf_counter() - start
    steps = api.run_steps(summary.thread, home)
    ours = steps["latency_ms"].tolist()

    generator = pipeline("text-generation", model=str(folder), device="cpu")
    bare = []
    for text in steps["input"]:  # the same prompts, in the same order
        start = time.perf_counter()
        generator(
            PREFIX + text + SUFFIX,
            max_new_tokens=NEW_TOKENS,
            min_new_tokens=4,
            do_sample=False,
            return_full_text=False,
        )
        bare.append((time.perf_counter() - start) * 1000)

    ours_med = statistics.median(ours[1:])
    bare_med = statistics.median(bare[1:])
    print(f"{STEPS} steps of local:gemma-3-270m, greedy, {NEW_TOKENS} new tokens, CPU")
    print(f"sandloop step 1 (includes loading the model once): {ours[0]:.0f} ms")
    print(
        f"sandloop steps 2..{STEPS}: median {ours_med:.0f} ms/step "
        f"(run wall {ours_wall:.1f} s, including the one model load)"
    )
    print(f"bare pipeline calls 2..{STEPS}: median {bare_med:.0f} ms/call")
    print(f"ratio sandloop/bare: {ours_med / bare_med:.2f}x")


if __name__ == "__main__":
    main()
