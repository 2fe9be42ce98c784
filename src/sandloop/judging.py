"""What a judge recipe is asked about a snapshot, and what its answers become.

Two modes:

- **score**: each output the snapshot would export is shown with what it answered, and the
  verdict ``{"score": 1-5, "reason": …}`` is a `judge` score of that output;
- **compare**: outputs that answer the same prompt are shown two at a time (A and B), and the
  verdict ``{"better": "A"|"B", "reason": …}`` is a preference pair, which preference exports
  (openai-dpo, TRL, hf) read as they read a person's.

Pure: the flow (`flows.judge`) runs the recipes and writes the rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, Literal

from sandloop.errors import SandloopError
from sandloop.exports.examples import Example, messages_hash, transcript
from sandloop.loops.recipe.spec import RecipeSpec
from sandloop.scoring import Judged, ScoreError, judged_preference_row, verdict_row

Mode = Literal["score", "compare"]
Subject = Judged | tuple[Judged, Judged]  # an output to score, or a pair (A, B) to compare


class JudgeError(SandloopError):
    """A judge recipe that cannot give verdicts, or a snapshot with nothing to judge."""


@dataclass(frozen=True, slots=True)
class Question:
    text: str  # the recipe's input
    subject: Subject


def judge_id(spec: RecipeSpec) -> str:
    return f"judge:{spec.name}@{spec.version}"


_ASKS: dict[Mode, tuple[str, str, str]] = {
    "score": ("score", "a numeric score", "{score: {type: number, minimum: 1, maximum: 5}}"),
    "compare": ("better", "which answer is better", "{better: {enum: [A, B]}}"),
}


def check_judge(spec: RecipeSpec, mode: Mode = "score") -> None:
    """A verdict is a JSON object with the field the mode reads: the recipe must require it."""
    field, what, example = _ASKS[mode]
    output = spec.output or {}
    prop = (output.get("properties") or {}).get(field) or {}
    typed = prop.get("type") in ("number", "integer") if mode == "score" else "enum" in prop
    if field not in (output.get("required") or []) or not typed:
        builtin = "judge-exchange" if mode == "score" else "judge-pair"
        raise JudgeError(
            f"recipe {spec.name} is not a {mode} judge: its output must require {what} "
            f"(output: {{type: object, properties: {example}, required: [{field}]}}); see the "
            f"builtin {builtin}"
        )


def questions(
    examples: Iterable[Example], located: dict[str, Judged], mode: Mode
) -> list[Question]:
    """What the judge is asked, in the examples' order. Comparing, the answers to one prompt
    are paired in key order, each with the next: n answers make n - 1 pairs."""
    if mode == "score":
        return [
            Question(transcript(e.messages), located[str(e.vector_key)])
            for e in examples
            if str(e.vector_key) in located
        ]
    by_prompt: dict[bytes, list[Example]] = {}
    for example in examples:
        if str(example.vector_key) in located:
            by_prompt.setdefault(messages_hash(example.messages[:-1]), []).append(example)
    asked = []
    for answers in by_prompt.values():
        distinct = list({str(e.messages[-1]["content"]): e for e in answers}.values())
        for a, b in pairwise(distinct):
            text = (
                f"{transcript(a.messages[:-1])}\n\nAnswer A: {a.messages[-1]['content']}"
                f"\n\nAnswer B: {b.messages[-1]['content']}"
            )
            pair = (located[str(a.vector_key)], located[str(b.vector_key)])
            asked.append(Question(text, pair))
    return asked


def verdict_rows(
    parsed: Any, judge_key: str, subjects: list[Subject], by: str
) -> list[dict[str, Any]]:
    """The `scores` rows a verdict makes; ScoreError when it is not one this mode reads."""
    if not isinstance(parsed, dict):
        raise ScoreError("the judge gave no JSON verdict")
    reason = parsed.get("reason")
    rows = []
    for subject in subjects:
        if isinstance(subject, Judged):
            rows.append(verdict_row(subject, parsed.get("score"), by, reason, judge_key))
            continue
        better = parsed.get("better")
        if better not in ("A", "B"):
            raise ScoreError(f"the judge's 'better' is {better!r}, not A or B")
        chosen, rejected = subject if better == "A" else subject[::-1]
        rows.append(judged_preference_row(chosen, rejected, by, reason, judge_key))
    return rows
