"""Tiny real models built locally by the tests: nothing is downloaded.

A 2-layer GPT-2 with a byte-level BPE tokenizer trained on text that ships with Python. Its
output is gibberish, but it goes through the real ``from_pretrained``/``generate`` path and is
deterministic under a seed.
"""

from __future__ import annotations

import inspect
import json
import textwrap
from pathlib import Path


def _corpus() -> list[str]:
    import argparse
    import collections
    import pathlib as pathlib_module

    sources = [
        inspect.getsource(m) for m in (argparse, collections, json, pathlib_module, textwrap)
    ]
    return [line for source in sources for line in source.splitlines() if line.strip()]


def build_tiny_gpt2(folder: Path) -> Path:
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(_corpus(), vocab_size=2048, special_tokens=["<|endoftext|>"])
    tokenizer = GPT2TokenizerFast(
        tokenizer_object=bpe,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_embd=64,
        n_layer=2,
        n_head=2,
        n_positions=1024,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    GPT2LMHeadModel(config).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder
