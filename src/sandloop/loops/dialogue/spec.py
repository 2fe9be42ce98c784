"""Dialogue specs: who speaks, in what order, how hot, and when to stop."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, PrivateAttr, ValidationInfo, model_validator

from sandloop.hashing import realm_key, thread_key
from sandloop.loops.recipe.render import TemplateError, slots_used
from sandloop.loops.recipe.spec import check_recipe_ref
from sandloop.loops.spec_check import load_spec
from sandloop.loops.spec_files import SPEC_CONFIG
from sandloop.models.registry import Catalog, ModelInfo, catalog_in

NAME = r"^[A-Za-z0-9][\w.\- ]*$"


class _Spec(BaseModel):
    model_config = SPEC_CONFIG


class Actor(_Spec):
    name: str = Field(pattern=NAME, max_length=60)
    role: str = Field("", description="system prompt template; may use {{ question }}, {{ name }}")
    model: str = Field(description="model ref or route:NAME")
    params: dict[str, Any] = Field(default_factory=dict)
    _info: ModelInfo = PrivateAttr()  # the model, as the catalog it was checked against knows it

    @model_validator(mode="after")
    def _checks(self, context: ValidationInfo) -> Actor:
        catalog = catalog_in(context)
        info = self._info = catalog.lookup(self.model)
        check_recipe_ref(self.model, catalog)
        if (info.input_type, info.output_type) != ("text", "text"):
            raise ValueError(f"{self.model} is not text→text; an actor needs a text model")
        info.params_for(self.params)  # BadParams is a ValueError, naming the field
        try:
            extra = slots_used(self.role) - {"question", "name", "others"}
        except TemplateError as exc:
            raise ValueError(f"role: does not parse: {exc}") from None
        if extra:
            raise ValueError(
                f"role: uses {', '.join(sorted(extra))}; a role can use question, name, others"
            )
        return self

    @property
    def info(self) -> ModelInfo:
        return self._info


class Judge(_Spec):
    recipe: str = Field("judge-dialogue", description="a recipe returning {verdict, score, reason}")
    model: str | None = Field(None, description="replaces the recipe's model")
    every: int = Field(1, ge=1, description="judge after every N turns")
    stop_at_score: float | None = Field(None, description="also stop when score ≥ this")


class TemperatureSchedule(_Spec):
    """Temperature rises by ``step`` each turn from ``start``, up to ``max``."""

    start: float = Field(0.3, ge=0, le=5)
    step: float = Field(0.1, ge=0, le=5)
    max: float = Field(1.2, ge=0, le=5)

    def at(self, turn: int) -> float:
        return round(min(self.max, self.start + self.step * turn), 6)


class DialogueStop(_Spec):
    max_turns: int = Field(8, ge=1, le=10_000)
    sentinel: str | None = Field(
        "@final answer", description="a turn containing this (case-insensitive) ends the dialogue"
    )
    stop_on_repeat: bool = Field(True, description="stop when a turn repeats an earlier one")
    max_output_tokens: int | None = Field(None, ge=1, description="budget over all turns")


class DialogueSpec(_Spec):
    name: str = Field(pattern=NAME, max_length=120)
    description: str = ""
    question: str = Field("", description="what the actors take turns on (a chat has none)")
    actors: list[Actor] = Field(min_length=1)
    human: str | None = Field(
        None,
        pattern=NAME,
        max_length=60,
        description="a chat: the person whose messages come between the actors' turns",
    )
    turn_order: list[str] | None = Field(None, description="actor names; default: as listed")
    temperature: TemperatureSchedule = Field(default_factory=TemperatureSchedule)
    judge: Judge | None = None
    stop: DialogueStop = Field(default_factory=DialogueStop)

    @model_validator(mode="after")
    def _checks(self) -> DialogueSpec:
        names = [a.name for a in self.actors]
        if len(set(names)) != len(names):
            raise ValueError(f"actors: names must differ, got {names}")
        if not self.question.strip() and self.human is None:
            raise ValueError("question: a dialogue needs a question")
        if self.human in names:
            raise ValueError(f"human: {self.human!r} is also an actor's name")
        for name in self.turn_order or []:
            if name not in names:
                raise ValueError(
                    f"turn_order: {name!r} is not an actor; actors are {', '.join(names)}"
                )
        return self

    @property
    def order(self) -> list[str]:
        return list(self.turn_order or [a.name for a in self.actors])

    def actor(self, name: str) -> Actor:
        return next(a for a in self.actors if a.name == name)

    def model_of(self, name: str) -> str:
        """Who spoke a turn: an actor's model, or ``human`` for a chat's person."""
        return "human" if name == self.human else self.actor(name).model

    @property
    def realm(self) -> str:
        """The dialogue without its question: asking another question is another thread."""
        unkeyed = {"description", "question"} | ({"human"} if self.human is None else set())
        # ``human`` came later: left out when unset, so a dialogue keeps the keys it had
        return realm_key("dialogue", self.model_dump(exclude=unkeyed))

    def thread(self, seed: int | None) -> str:
        return thread_key(self.realm, {"question": self.question, "seed": seed})


def load_dialogue(path: Path, catalog: Catalog, question: str | None = None) -> DialogueSpec:
    overrides = {} if question is None else {"question": question}
    return load_spec(path, DialogueSpec, catalog, **overrides)
