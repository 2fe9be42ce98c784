"""A local causal LM's batch call (what a sweep's tick uses): greedy rows decoded together in one
padded `generate` say what each says alone; sampled rows keep their own seeds."""

from __future__ import annotations

from pathlib import Path

from sandloop.models.base import CallContext, ModelInput, ModelOutput
from sandloop.models.local import LocalTextAdapter

PROMPTS = [
    "The lighthouse",
    "A red balloon drifts over the harbour at dawn",
    "Tides",
    "Every answer becomes the next question, and",
]


def alone(model: LocalTextAdapter, params: dict[str, object], seeds: list[int]) -> list[str]:
    outputs = [
        model.generate(ModelInput("text", text=p), params, CallContext(s, f"k{s}"))
        for p, s in zip(PROMPTS, seeds, strict=True)
    ]
    return [o.text or "" for o in outputs]


def together(model: LocalTextAdapter, params: dict[str, object], seeds: list[int]) -> list[str]:
    answers = model.generate_batch(
        [ModelInput("text", text=p) for p in PROMPTS],
        params,
        [CallContext(s, f"k{s}") for s in seeds],
    )
    assert all(isinstance(a, ModelOutput) for a in answers), answers
    return [a.text or "" for a in answers if isinstance(a, ModelOutput)]


def test_greedy_rows_batched_say_what_they_say_alone(tiny_gpt2: Path) -> None:
    model = LocalTextAdapter(f"local:{tiny_gpt2}", tiny_gpt2)
    params = {"temperature": 0.0, "max_new_tokens": 12}
    seeds = [1, 2, 3, 4]
    batched = together(model, params, seeds)
    assert batched == alone(model, params, seeds)
    assert len(set(batched)) > 1  # different prompts, different continuations
    reordered = model.generate_batch(  # a row's answer does not depend on its neighbours
        [ModelInput("text", text=p) for p in reversed(PROMPTS)],
        params,
        [CallContext(s, f"k{s}") for s in reversed(seeds)],
    )
    assert [a.text for a in reversed(reordered) if isinstance(a, ModelOutput)] == batched


def test_sampled_rows_keep_their_own_seeds(tiny_gpt2: Path) -> None:
    model = LocalTextAdapter(f"local:{tiny_gpt2}", tiny_gpt2)
    params = {"temperature": 1.0, "max_new_tokens": 12}
    seeds = [11, 12, 13, 14]
    first = together(model, params, seeds)
    assert first == alone(model, params, seeds) == together(model, params, seeds)
    other = together(model, params, [21, 22, 23, 24])
    assert other != first


def test_a_row_without_text_fails_alone(tiny_gpt2: Path) -> None:
    model = LocalTextAdapter(f"local:{tiny_gpt2}", tiny_gpt2)
    answers = model.generate_batch(
        [ModelInput("text", text="a kite"), ModelInput("image", data=b"...")],
        {"temperature": 0.0, "max_new_tokens": 6},
        [CallContext(1, "a"), CallContext(1, "b")],
    )
    assert isinstance(answers[0], ModelOutput) and answers[0].text
    assert getattr(answers[1], "kind", None) == "invalid_input"
