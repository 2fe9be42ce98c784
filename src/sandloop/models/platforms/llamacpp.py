"""``llamacpp:``: llama.cpp on this machine, through llama-cpp-python, for any GGUF file.

On 2 CPU cores it writes Gemma 3 270M about five times faster than transformers (see
benchmarks/RESULTS.md), and loads in a second with no conversion. llama-cpp-python compiles
from source, so it is an optional extra: ``make setup-llamacpp``.
"""

from __future__ import annotations

from pydantic import Field

from sandloop.models.platforms.base import Platform
from sandloop.models.platforms.local import LocalTextParams

GEMMA_NAME = "gemma-3-270m"
INSTALL_HINT = "make setup-llamacpp (or pip install -e '.[llamacpp]'; it compiles, ~12 minutes)"


class LlamaCppTextParams(LocalTextParams):
    """local:'s knobs, so a network moves between the two platforms by its refs alone, plus
    llama.cpp's own top-k."""

    top_k: int = Field(40, ge=0, le=1000, description="sample among the k likeliest; 0: all")


def _gguf_path(name: str) -> bool:
    return name.lower().endswith(".gguf")


PLATFORM = Platform(
    name="llamacpp",
    tasks={"text-generation": LlamaCppTextParams},
    adapter="sandloop.models.llamacpp:create",
    default_task="text-generation",
    cost_hint="free (local CPU)",
    sovereign=True,
    matches=_gguf_path,
    naming="llama.cpp models are named by a .gguf file path, or by an alias in your models file",
)
