"""Run by the export tests in a child process, under a chosen PYTHONHASHSEED: load an export as
a user would, put every conversational file set through TRL's data utilities, and train a few
steps of SFT and DPO on a tiny local model. Prints what it found as one JSON line.

TRL's `is_conversational` picks one of an example's keys by set order, so a dataset that is
conversational under one hash seed can look like plain text under another: hence a process per
seed.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any


def check_utilities(export: Path, tokenizer: Any) -> dict[str, int]:
    """Rows of each file set that TRL reads as conversational and templates without error."""
    import datasets
    from trl.data_utils import (
        apply_chat_template,
        is_conversational,
        is_conversational_from_value,
        maybe_apply_chat_template,
        maybe_convert_to_chatml,
    )

    sets = {
        "sft": "hf/sft/*.parquet",
        "preference": "hf/preference/*.parquet",
        "openai-chat": "openai-chat/*.jsonl",
        "trl-messages": "trl/messages.*.jsonl",
        "trl-prompt_completion": "trl/prompt_completion.*.jsonl",
        "trl-preference": "trl/preference.*.jsonl",
        "sharegpt": "sharegpt/*.jsonl",
    }
    seen: dict[str, int] = {}
    for name, pattern in sets.items():
        if name in ("sft", "preference"):  # the card's configs
            loaded = datasets.load_dataset(str(export), name)
        else:
            files = [str(f) for f in sorted(export.glob(pattern))]
            loaded = datasets.load_dataset("json", data_files=files)
        rows = [dict(row) for split in loaded.values() for row in split]
        for row in rows:
            if name == "sharegpt":
                assert is_conversational_from_value(row), row
                row = maybe_convert_to_chatml(row)
            assert is_conversational(row), (name, row)
            templated = maybe_apply_chat_template(row, tokenizer)
            assert templated == apply_chat_template(row, tokenizer), name
            assert all(isinstance(v, str) and v for v in templated.values()), (name, templated)
        seen[name] = len(rows)
    return seen


def train(export: Path, model_dir: Path) -> dict[str, float]:
    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    losses: dict[str, float] = {}
    common = {
        "max_steps": 2,
        "per_device_train_batch_size": 2,
        "report_to": [],
        "use_cpu": True,
        "save_strategy": "no",
        "logging_steps": 1,
        "disable_tqdm": True,
    }
    with tempfile.TemporaryDirectory() as scratch:
        sft = datasets.load_dataset(str(export), "sft", split="train")
        trainer = SFTTrainer(
            model=AutoModelForCausalLM.from_pretrained(str(model_dir)),
            args=SFTConfig(output_dir=f"{scratch}/sft", max_length=256, **common),
            train_dataset=sft,
            processing_class=tokenizer,
        )
        losses["sft"] = trainer.train().training_loss
        pairs = datasets.load_dataset(str(export), "preference", split="train")
        trainer = DPOTrainer(
            model=AutoModelForCausalLM.from_pretrained(str(model_dir)),
            args=DPOConfig(output_dir=f"{scratch}/dpo", max_length=256, **common),
            train_dataset=pairs,
            processing_class=tokenizer,
        )
        losses["dpo"] = trainer.train().training_loss
    return losses


def train_vision(export: Path, model_dir: Path, file_set: str = "hf") -> dict[str, Any]:
    """A few SFT steps of a vision-language model on a vision file set as it loads (the hf
    ``vision`` config, or ``trl/vision.train.parquet``): TRL fills the ``{"type": "image"}``
    placeholders from the ``images`` column. Says too whether the batches TRL builds carry
    ``pixel_values``: a file TRL reads as text only trains as well, on no image."""
    import datasets
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from trl import SFTConfig, SFTTrainer

    if file_set == "hf":
        captions = datasets.load_dataset(str(export), "vision", split="train")
    else:
        files = str(export / "trl" / "vision.train.parquet")
        captions = datasets.load_dataset("parquet", data_files=files, split="train")
    with tempfile.TemporaryDirectory() as scratch:
        trainer = SFTTrainer(
            model=AutoModelForImageTextToText.from_pretrained(str(model_dir)),
            args=SFTConfig(
                output_dir=scratch,
                max_length=None,  # truncation could cut the image tokens
                max_steps=2,
                per_device_train_batch_size=2,
                report_to=[],
                use_cpu=True,
                save_strategy="no",
                logging_steps=1,
                disable_tqdm=True,
            ),
            train_dataset=captions,
            processing_class=AutoProcessor.from_pretrained(str(model_dir)),
        )
        batch = next(iter(trainer.get_train_dataloader()))
        result = trainer.train()
        return {
            "loss": result.training_loss,
            "steps": trainer.state.global_step,
            "pixel_values": list(batch["pixel_values"].shape) if "pixel_values" in batch else None,
        }


def main() -> None:
    export, model_dir = Path(sys.argv[1]), Path(sys.argv[2])
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    rows = check_utilities(export, tokenizer)
    losses = train(export, model_dir)
    print(json.dumps({"rows": rows, "losses": losses}))


if __name__ == "__main__":
    main()
