"""The llamacpp platform: GGUF text models run by llama.cpp through llama-cpp-python.

A model is loaded once per process (about a second for Gemma 3 270M) and its calls take turns:
one llama.cpp context is not safe to share between threads. Each call clears the context and
seeds its own sampler from the step's seed, so a step's text depends on nothing but its prompt,
parameters and seed — the same in a resumed run, a re-run and another process.
"""

from __future__ import annotations

import atexit
import ctypes
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sandloop.models.base import AdapterContext, CallContext, ModelAdapter, ModelInput, ModelOutput
from sandloop.models.errors import InvalidInput, InvalidOutput, NotLoadable
from sandloop.models.platforms.llamacpp import GEMMA_NAME, INSTALL_HINT, LlamaCppTextParams

if TYPE_CHECKING:
    from sandloop.models.registry import ModelInfo

#: Tokens of prompt and answer together. Prompts are cut to ``max_input_chars`` first, so this
#: bounds memory (the KV cache), not what a loop can say.
CONTEXT_TOKENS = 4096
_SEEDS = 2**32  # llama.cpp's seeds are 32-bit


@dataclass
class _Loaded:
    llm: Any
    turn: threading.Lock


_LOADED: dict[tuple[str, int], _Loaded] = {}
_LOADING = threading.Lock()


def load_gguf(path: Path, threads: int) -> _Loaded:
    with _LOADING:
        key = (str(path), threads)
        if key not in _LOADED:
            if not _LOADED:
                atexit.register(_close_all)
            _LOADED[key] = _Loaded(_open(path, threads), threading.Lock())
        return _LOADED[key]


def _close_all() -> None:
    """Models are freed while llama-cpp-python can still free them: left to the interpreter's
    shutdown, their finalisers run after its C bindings are gone and print tracebacks."""
    with _LOADING:
        for loaded in _LOADED.values():
            loaded.llm.close()
        _LOADED.clear()


_LOG = logging.getLogger("sandloop.llamacpp")
_QUIET: list[Any] = []  # the C callback, kept alive for as long as llama.cpp may call it


def _quiet(llama_cpp: Any) -> None:
    """llama.cpp's own log lines (some even with ``verbose=False``) go to Python logging at debug
    level, never to the terminal: a run's console and its `error:` line stay sandloop's."""
    if _QUIET:
        return

    @llama_cpp.llama_log_callback  # type: ignore[untyped-decorator]
    def to_logging(level: int, text: bytes, _user_data: Any) -> None:
        _LOG.debug("%s", text.decode("utf-8", "replace").rstrip())

    llama_cpp.llama_log_set(to_logging, ctypes.c_void_p(0))
    _QUIET.append(to_logging)


def _open(path: Path, threads: int) -> Any:
    if not path.is_file():
        raise NotLoadable(
            f"no GGUF file at {path}: give the path of a .gguf file "
            "(or an alias of one in your models file)"
        )
    try:
        import llama_cpp
    except ImportError:
        raise NotLoadable(f"llama-cpp-python is not installed: {INSTALL_HINT}") from None
    _quiet(llama_cpp)
    try:
        return llama_cpp.Llama(
            model_path=str(path), n_ctx=CONTEXT_TOKENS, n_threads=threads, verbose=False
        )
    except ValueError as exc:  # llama-cpp-python's one failure for any file it cannot read
        raise NotLoadable(
            f"llama.cpp cannot load {path} ({exc}): is it a whole GGUF file, of an architecture "
            "this llama-cpp-python knows?"
        ) from None


class LlamaCppTextAdapter:
    """Text generation by a GGUF model: continues the prompt, like ``local:``'s causal LMs."""

    def __init__(self, ref: str, path: Path, threads: int) -> None:
        self.ref, self.path, self.threads = ref, path, threads

    def load(self) -> None:
        load_gguf(self.path, self.threads)

    def generate(
        self, model_input: ModelInput, params: dict[str, Any], ctx: CallContext
    ) -> ModelOutput:
        p = LlamaCppTextParams.model_validate(params)
        if model_input.text is None:
            raise InvalidInput("llama.cpp text models take text", model=self.ref)
        prompt = p.prefix + model_input.text[-p.max_input_chars :] + p.suffix
        options = {
            "max_tokens": p.max_new_tokens,
            "temperature": p.temperature,
            "top_p": p.top_p,
            "top_k": p.top_k,
            "repeat_penalty": p.repetition_penalty,
            "seed": None if ctx.seed is None else ctx.seed % _SEEDS,
        }
        loaded = load_gguf(self.path, self.threads)
        with loaded.turn:
            llm = loaded.llm
            llm.reset()  # no state of the last call (its tokens, its sampler) carries over
            try:
                if ctx.on_text is None:
                    done = llm.create_completion(prompt, **options)
                    text, written = done["choices"][0]["text"], done["usage"]["completion_tokens"]
                else:
                    pieces = []
                    for chunk in llm.create_completion(prompt, stream=True, **options):
                        choice = chunk["choices"][0]
                        if choice["finish_reason"] is None:  # the last chunk only says why
                            pieces.append(choice["text"])
                            if choice["text"]:  # a piece of a character waits for the rest
                                ctx.on_text(choice["text"])
                    text, written = "".join(pieces), len(pieces)
                read = len(llm.tokenize(prompt.encode("utf-8")))
            except ValueError as exc:  # a prompt longer than the context
                raise InvalidInput(str(exc), model=self.ref) from None
        if not text.strip():
            raise InvalidOutput("the model produced only whitespace", model=self.ref)
        return ModelOutput(
            "text", text=text.strip(), usage={"input_tokens": read, "output_tokens": written}
        )


def create(info: ModelInfo, ctx: AdapterContext) -> ModelAdapter:
    settings = ctx.settings
    if info.model_id == GEMMA_NAME:
        from sandloop.models.gemma import packaged_gguf

        path = packaged_gguf(settings.models_path)
    else:
        path = Path(info.model_id).expanduser()
    threads = settings.llamacpp_threads or len(os.sched_getaffinity(0))
    return LlamaCppTextAdapter(info.ref, path, threads)
