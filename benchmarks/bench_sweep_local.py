"""A sweep of a tiny local GPT-2 (built here, as the tests build it) against a bare padded
`generate` loop over the same prompts: 64 threads × 10 steps, greedy decoding.

- sweep: `api.run_sweep`, one batched task run per tick: one padded `generate` of 64 rows;
- bare: the same ticks as a Python loop, each one `tokenizer(..., padding=True)` and one
  `model.generate` of the 64 rows, each row's output the next row's input; no record.

With `--width W --layers L` the GPT-2 is bigger (still random weights, built here): the
sweep's own work per tick is fixed, so the ratio grows with what a batch costs.

    .venv/bin/python benchmarks/bench_sweep_local.py [--threads 64] [--steps 10] [--width 64]
        [--layers 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(ROOT))

from _common import drain  # noqa: E402, F401  (sets the private Prefect home first)

NEW_TOKENS = 12


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    args = parser.parse_args()
    import torch
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness
    from tests.tiny_models import build_tiny_gpt2
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sandloop import api
    from sandloop.loops.sweep.spec import SweepSpec

    model_dir = build_tiny_gpt2(Path(tempfile.mkdtemp()) / "gpt2", args.width, args.layers)
    params = {"temperature": 0.0, "max_new_tokens": NEW_TOKENS, "repetition_penalty": 1.15}
    network = {"name": "tiny", "models": [{"model": f"local:{model_dir}", "params": params}]}
    genesis = [f"prompt number {i} about the sea" for i in range(args.threads)]
    sweep = SweepSpec.model_validate(
        {
            "name": "local",
            "networks": [network],
            "genesis": genesis,
            "seeds": [1],
            "stop": {"max_steps": args.steps, "stop_on_repeat": False},
            "max_concurrent": args.threads,
        }
    )

    def bare() -> float:
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
        pad = tokenizer.pad_token_id or tokenizer.eos_token_id
        if tokenizer.pad_token is None:  # the usual fix for a tokenizer without one
            tokenizer.pad_token = tokenizer.eos_token
        texts = list(genesis)
        start = time.perf_counter()
        for _ in range(args.steps):
            encoded = tokenizer(texts, return_tensors="pt", padding=True, padding_side="left")
            with torch.inference_mode():
                out = model.generate(
                    **encoded,
                    max_new_tokens=NEW_TOKENS,
                    min_new_tokens=4,
                    repetition_penalty=1.15,
                    do_sample=False,
                    pad_token_id=pad,
                )
            width = encoded["input_ids"].shape[1]
            texts = [
                tokenizer.decode(row[width:], skip_special_tokens=True).strip() or "."
                for row in out
            ]
        return time.perf_counter() - start

    bare_s = bare()
    with (
        prefect_test_harness(server_startup_timeout=120),
        temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}),
    ):
        api.run_sweep(
            sweep.model_copy(update={"name": "warm-up", "genesis": genesis[:2]}), tempfile.mkdtemp()
        )
        start = time.perf_counter()
        summary = api.run_sweep(sweep, tempfile.mkdtemp())
        sweep_s = time.perf_counter() - start
    steps = args.threads * args.steps
    print(
        f"{args.threads} threads × {args.steps} steps of a GPT-2 {args.layers}×{args.width} "
        f"(greedy, {NEW_TOKENS} new tokens), {time.strftime('%Y-%m-%d')}"
    )
    print(f"bare padded generate loop:  {steps / bare_s:7.1f} steps/s ({bare_s:.2f} s)")
    print(
        f"sweep (batched ticks):      {steps / sweep_s:7.1f} steps/s ({sweep_s:.2f} s), "
        f"{summary.task_runs} task runs, {summary.failed} failed"
    )
    print(f"sweep / bare: {bare_s / sweep_s:.2f}x")


if __name__ == "__main__":
    main()
