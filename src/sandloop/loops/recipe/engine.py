"""The refine loop: answer, check, critique, revise, until the output is valid (and judged good
enough) or the rounds run out. Pure control flow: the model call and the recording are the
driver's, so this runs the same under Prefect, in a notebook, or in a test.

A recipe run is addressed like everything else: realm = the recipe (name, version, template,
model…), thread = its inputs and seed, step = the call's position, facet = model#role.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sandloop.hashing import derive_seed
from sandloop.loops.protocol import Call, Outcome, Recorded
from sandloop.loops.recipe.render import check_output, extract_json, render
from sandloop.loops.recipe.spec import RecipeSpec
from sandloop.loops.status import StopReason
from sandloop.records import CallAddress

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


def model_params(spec: RecipeSpec, model: str) -> dict[str, Any]:
    """A model's parameters in this recipe: the recipe's own apply to its own model only (a
    critic model on another platform takes its defaults)."""
    info = spec.model_info(model)
    own = spec.params if model == spec.model_ref else {}
    return info.params_for(own)


@dataclass(frozen=True)
class _Next:
    role: str  # generate | critic | revise
    model: str
    prompt: str
    round: int


class RefineLoop:
    """One recipe run: the first answer, then (critic, revise) rounds while the output does not
    validate, or the critic's score stays below the threshold."""

    kind = "recipe"

    def __init__(self, spec: RecipeSpec, prompt: str, thread: str, seed: int | None) -> None:
        self.spec, self.prompt, self.thread, self.seed = spec, prompt, thread, seed
        self.attempts: list[Attempt] = []
        self._next: _Next | None = _Next("generate", spec.model_ref, prompt, 0)
        self._reason: StopReason | None = None
        self._answer: Attempt | None = None
        self._score: float | None = None

    @property
    def steps_done(self) -> int:
        return len(self.attempts)

    def plan(self) -> Call:
        assert self._next is not None, "plan() after the loop stopped"
        index, planned = len(self.attempts), self._next
        facet = f"{planned.model}#{planned.role}"
        address = CallAddress("recipe", self.spec.realm, self.thread, index, facet, planned.model)
        params = model_params(self.spec, planned.model)
        return Call(
            kind="recipe",
            realm=self.spec.realm,
            thread=self.thread,
            step=index,
            facet=facet,
            model=planned.model,
            key=address.key(planned.prompt, params),
            step_key=address.step_key,
            parent_key=None,
            input_type="text",
            input_value=planned.prompt,
            output_type="text",
            params=params,
            seed=derive_seed(self.seed, self.thread, index) if self.seed is not None else None,
            index=index,
            metadata=self._meta(planned.role, planned.round),
        )

    def _meta(self, role: str, round_: int) -> dict[str, Any]:
        # Langfuse's names, so traces export without renaming.
        return {
            "promptName": self.spec.name,
            "promptVersion": self.spec.version,
            "role": role,
            "round": round_,
        }

    def advance(self, call: Call, outcome: Outcome) -> Recorded:
        planned = self._next
        assert planned is not None
        if not outcome.ok:
            self._next, self._reason = None, StopReason.FAILED
            return Recorded()
        text = outcome.value or ""
        made = Attempt(call.step, planned.round, planned.role, planned.model, planned.prompt, text)
        if planned.role == "critic":
            self._score = critic_score(text)
            made = replace(made, score=self._score)
            self._after_critic(planned.round, critique=text)
        else:
            parsed, errors = check_output(text, self.spec.output)
            made = replace(made, parsed=parsed, errors=tuple(errors))
            self._answer = made
            self._after_answer(planned.round)
        self.attempts.append(made)
        return Recorded(self.details(made, final=False))

    def details(self, attempt: Attempt, final: bool) -> dict[str, Any]:
        """What the record says about an attempt; the final answer is recorded again with
        ``final`` once the loop is done."""
        return {
            "parsed": attempt.parsed if attempt.role != "critic" else None,
            "validation_errors": list(attempt.errors),
            "score": attempt.score,
            "final": final,
        }

    def _after_answer(self, round_: int) -> None:
        assert self._answer is not None
        refine = self.spec.refine
        threshold = refine.judge_threshold if refine else None
        if not self._answer.errors and threshold is None:
            self._next, self._reason = None, StopReason.VALID
        elif refine is None:
            self._next, self._reason = None, StopReason.GAVE_UP
        else:
            prompt = render(
                refine.critic,
                {
                    "prompt": self.prompt,
                    "output": self._answer.output,
                    "errors": list(self._answer.errors),
                },
            )
            self._next = _Next("critic", refine.critic_model or self.spec.model_ref, prompt, round_)

    def _after_critic(self, round_: int, critique: str) -> None:
        assert self._answer is not None and self.spec.refine is not None
        refine, score = self.spec.refine, self._score
        threshold = refine.judge_threshold
        accepted = threshold is not None and score is not None and score >= threshold
        if not self._answer.errors and accepted:
            self._next, self._reason = None, StopReason.JUDGED
            return
        if round_ == refine.max_rounds:
            self._next, self._reason = None, StopReason.GAVE_UP
            return
        answer = self._answer
        prompt = render(
            refine.revise,
            {
                "prompt": self.prompt,
                "output": answer.output,
                "critique": critique,
                "errors": list(answer.errors),
            },
        )
        self._next = _Next("revise", self.spec.model_ref, prompt, round_ + 1)

    def critiques(self) -> list[tuple[Attempt, Attempt]]:
        """Each critique with the answer it judged: (answer, critique), in call order."""
        pairs, answer = [], None
        for attempt in self.attempts:
            if attempt.role != "critic":
                answer = attempt
            elif answer is not None:
                pairs.append((answer, attempt))
        return pairs

    def stop_reason(self, now: datetime) -> StopReason | None:
        return self._reason

    def due_at(self) -> datetime | None:
        return None

    def final(self) -> Attempt | None:
        """The answer the run ends on (the last one that was not a critique)."""
        return self._answer

    def outcome(self) -> RecipeOutcome:
        answer = self._answer
        assert answer is not None and self._reason is not None
        errors = list(answer.errors)
        refine = self.spec.refine
        threshold = refine.judge_threshold if refine else None
        if self._reason is StopReason.GAVE_UP and not errors and threshold is not None:
            errors = [f"the critic's score {self._score} stayed below {threshold}"]
        status = self._reason.value
        return RecipeOutcome(
            status, answer.output, answer.parsed, errors, self._score, self.attempts
        )
