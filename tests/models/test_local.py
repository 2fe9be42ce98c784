from __future__ import annotations

from pathlib import Path

import pytest

from sandloop.models.base import CallContext, ModelInput
from sandloop.models.errors import NotLoadable
from sandloop.models.local import LocalTextAdapter


def test_tiny_gpt2_generates_deterministically_under_a_seed(tiny_gpt2: Path) -> None:
    model = LocalTextAdapter(f"local:{tiny_gpt2}", tiny_gpt2)
    params = {"prefix": "def ", "suffix": "(", "max_new_tokens": 8, "temperature": 1.0}
    first = model.generate(ModelInput("text", text="parse"), params, CallContext(3, "s"))
    again = model.generate(ModelInput("text", text="parse"), params, CallContext(3, "s"))
    other = model.generate(ModelInput("text", text="parse"), params, CallContext(4, "s"))
    assert first.text and first.text == again.text
    assert first.text != other.text
    assert first.usage["output_tokens"] <= 8 and first.usage["input_tokens"] > 0


def test_greedy_ignores_the_seed(tiny_gpt2: Path) -> None:
    model = LocalTextAdapter(f"local:{tiny_gpt2}", tiny_gpt2)
    params = {"temperature": 0, "max_new_tokens": 6}
    a = model.generate(ModelInput("text", text="import json"), params, CallContext(1, "s")).text
    b = model.generate(ModelInput("text", text="import json"), params, CallContext(2, "s")).text
    assert a == b


def test_a_listener_gets_the_text_as_it_is_written_and_the_answer_is_unchanged(
    tiny_gpt2: Path,
) -> None:
    model = LocalTextAdapter(f"local:{tiny_gpt2}", tiny_gpt2)
    params = {"max_new_tokens": 12, "temperature": 1.0}
    pieces: list[str] = []
    streamed = model.generate(
        ModelInput("text", text="parse"), params, CallContext(5, "s", on_text=pieces.append)
    )
    quiet = model.generate(ModelInput("text", text="parse"), params, CallContext(5, "s"))
    assert streamed.text == quiet.text
    assert len(pieces) > 1 and "".join(pieces).strip() == streamed.text


def test_a_missing_model_folder_is_not_loadable(tmp_path: Path) -> None:
    model = LocalTextAdapter("local:x", tmp_path / "nothing-here")
    with pytest.raises(NotLoadable, match="cannot load local model"):
        model.generate(ModelInput("text", text="x"), {}, CallContext(1, "s"))
