"""The refine loop: answer, check, critique, revise — until valid (and judged good enough) or
out of rounds. Pure control flow: the model call and the recording are the caller's, so this
runs the same under Prefect, in a notebook, or in a test."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from sandloop.recipes.render import check_output, extract_json, render
from sandloop.recipes.spec import RecipeSpec

_NUMBER = re.compile(r"score\D{0,12}?(\d+(?:\.\d+)?)", re.IGNORECASE)


@dataclass(frozen=True)
class Attempt:
    """One model call of a recipe: what it was asked, what it said, what we made of it."""

    index: int  # the call's position in the recipe run: its step
    round: int
    role: str  # generate | critic | revise
    model: str
    prompt: str
    output: str
    parsed: Any = None
    errors: tuple[str, ...] = ()
    score: float | None = None


@dataclass
class RecipeOutcome:
    status: str  # valid | judged | gave_up
    output: str
    parsed: Any
    errors: list[str]
    score: float | None
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return self.status != "gave_up"


# call(role, model_ref, prompt, index) -> the model's text; raises on failure.
ModelCall = Callable[[str, str, str, int], str]


def critic_score(text: str) -> float | None:
    """The score a critic gave: ``{"score": n}`` if it wrote JSON, else 'score: n' in prose."""
    try:
        parsed = extract_json(text)
        if isinstance(parsed, dict) and isinstance(parsed.get("score"), int | float):
            return float(parsed["score"])
    except ValueError:
        pass
    match = _NUMBER.search(text)
    return float(match.group(1)) if match else None


def run_recipe(
    spec: RecipeSpec,
    prompt: str,
    call: ModelCall,
    on_attempt: Callable[[Attempt], None] = lambda _a: None,
) -> RecipeOutcome:
    attempts: list[Attempt] = []

    def attempt(role: str, model: str, text_in: str, round_: int, **checked: Any) -> Attempt:
        index = len(attempts)
        made = Attempt(
            index, round_, role, model, text_in, call(role, model, text_in, index), **checked
        )
        return made

    def keep(made: Attempt) -> Attempt:
        attempts.append(made)
        on_attempt(made)
        return made

    answer = attempt("generate", spec.model_ref, prompt, 0)
    parsed, errors = check_output(answer.output, spec.output)
    answer = keep(replace(answer, parsed=parsed, errors=tuple(errors)))
    refine = spec.refine
    threshold = refine.judge_threshold if refine else None
    score: float | None = None
    for round_ in range(refine.max_rounds + 1 if refine else 1):
        if not errors and threshold is None:
            return RecipeOutcome("valid", answer.output, parsed, [], score, attempts)
        if refine is None:
            break
        critic_model = refine.critic_model or spec.model_ref
        critic_prompt = render(
            refine.critic, {"prompt": prompt, "output": answer.output, "errors": errors}
        )
        critique = attempt("critic", critic_model, critic_prompt, round_)
        score = critic_score(critique.output)
        keep(replace(critique, score=score))
        if not errors and threshold is not None and score is not None and score >= threshold:
            return RecipeOutcome("judged", answer.output, parsed, [], score, attempts)
        if round_ == refine.max_rounds:
            break
        revise_prompt = render(
            refine.revise,
            {
                "prompt": prompt,
                "output": answer.output,
                "critique": critique.output,
                "errors": errors,
            },
        )
        answer = attempt("revise", spec.model_ref, revise_prompt, round_ + 1)
        parsed, errors = check_output(answer.output, spec.output)
        answer = keep(replace(answer, parsed=parsed, errors=tuple(errors)))
    if not errors and threshold is not None:
        errors = [f"the critic's score {score} stayed below {threshold}"]
    return RecipeOutcome("gave_up", answer.output, parsed, errors, score, attempts)
