"""The local platform: transformers causal language models on this machine (sovereign default).

A model is loaded once per process and reused across steps and runs; loading dominates
everything else for small models. Sampling is seeded per step from the run's seed, so a resumed
run produces what an uninterrupted one would have.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandloop.models.base import CallContext, ModelInput, ModelOutput
from sandloop.models.errors import InvalidInput, InvalidOutput, Unavailable
from sandloop.models.params import LocalTextParams


@dataclass
class _Loaded:
    model: Any
    tokenizer: Any


_CACHE: dict[tuple[str, str], _Loaded] = {}
_CACHE_LOCK = threading.Lock()


def load_causal_lm(source: str, device: str) -> _Loaded:
    with _CACHE_LOCK:
        cached = _CACHE.get((source, device))
        if cached is not None:
            return cached
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # a per-load weights bar would break the CLI's display
        try:
            tokenizer = AutoTokenizer.from_pretrained(source)
            model: Any = AutoModelForCausalLM.from_pretrained(source)
            model = model.to(device).eval()
        except OSError as exc:
            raise Unavailable(f"cannot load local model {source!r}: {exc}") from None
        loaded = _Loaded(model=model, tokenizer=tokenizer)
        _CACHE[(source, device)] = loaded
        return loaded


class LocalTextAdapter:
    def __init__(self, ref: str, source: str | Path, device: str = "cpu") -> None:
        self.ref = ref
        self.source = str(source)
        self.device = device

    def generate(
        self, model_input: ModelInput, params: dict[str, Any], ctx: CallContext
    ) -> ModelOutput:
        import torch
        from transformers import set_seed

        p = LocalTextParams.model_validate(params)
        if model_input.text is None:
            raise InvalidInput("local text models take text", model=self.ref)
        loaded = load_causal_lm(self.source, self.device)
        prompt = p.prefix + model_input.text[-p.max_input_chars :] + p.suffix
        encoded = loaded.tokenizer(prompt, return_tensors="pt").to(self.device)
        if ctx.seed is not None:
            set_seed(ctx.seed)
        sampling = p.temperature > 0
        pad_id = loaded.tokenizer.pad_token_id or loaded.tokenizer.eos_token_id
        with torch.inference_mode():
            generated = loaded.model.generate(
                **encoded,
                max_new_tokens=p.max_new_tokens,
                min_new_tokens=min(4, p.max_new_tokens),
                do_sample=sampling,
                temperature=p.temperature if sampling else None,
                top_p=p.top_p if sampling else None,
                top_k=None,
                repetition_penalty=p.repetition_penalty,
                pad_token_id=pad_id,
            )
        new_tokens = generated[0, encoded["input_ids"].shape[1] :]
        text = loaded.tokenizer.decode(new_tokens, skip_special_tokens=True).strip()
        if not text:
            raise InvalidOutput("the model produced only whitespace", model=self.ref)
        usage = {
            "input_tokens": int(encoded["input_ids"].shape[1]),
            "output_tokens": len(new_tokens),
        }
        return ModelOutput("text", text=text, usage=usage)
