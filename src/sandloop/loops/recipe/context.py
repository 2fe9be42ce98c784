"""Filling a recipe's slots: literals, files, deck draws, earlier stages, store searches.

Values given by the user (``--context k=v``) win over the recipe's. A search is injected as a
callback so this stays free of the store and the embedders.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from sandloop.loops.recipe import deck
from sandloop.loops.recipe.render import render
from sandloop.loops.recipe.spec import RecipeSpec
from sandloop.loops.spec_files import SpecError

# search(query, k) -> the texts of the k nearest recorded outputs
Search = Callable[[str, int], list[str]]


def _no_search(query: str, k: int) -> list[str]:
    raise SpecError("this recipe searches the store, but no store was given")


def resolve_context(
    spec: RecipeSpec,
    input_text: str,
    given: Mapping[str, Any],
    seed: int | None,
    previous: Mapping[str, str] | None = None,
    search: Search = _no_search,
) -> dict[str, Any]:
    unknown = set(given) - set(spec.context) - {"input"}
    if unknown:
        known = ", ".join(sorted(spec.context)) or "none"
        raise SpecError(
            f"recipe {spec.name}: no slot {', '.join(sorted(unknown))} (slots: {known})"
        )
    values: dict[str, Any] = {"input": input_text}
    for name, slot in spec.context.items():
        if name in given:
            values[name] = given[name]
        elif slot.file is not None:
            try:
                values[name] = Path(slot.file).read_text(encoding="utf-8")
            except OSError as exc:
                raise SpecError(f"recipe {spec.name}: context.{name}: {exc}") from None
        elif slot.deck is not None:
            cards = deck.DECK if slot.deck == "builtin" else deck.read_deck(Path(slot.deck))
            values[name] = deck.draw(seed, cards)
        elif slot.recipe is not None:
            if previous is None or slot.recipe not in previous:
                raise SpecError(
                    f"recipe {spec.name}: context.{name} needs the output of {slot.recipe!r}, "
                    "an earlier stage of the pipeline"
                )
            values[name] = previous[slot.recipe]
        elif slot.search is not None:
            query = render(slot.search, {"input": input_text})
            values[name] = "\n".join(search(query, slot.k))
        elif slot.value is not None:
            values[name] = slot.value
        else:
            raise SpecError(
                f"recipe {spec.name}: slot {name!r} has no value; give --context {name}=…"
            )
    return values


def prompt_for(spec: RecipeSpec, values: Mapping[str, Any]) -> str:
    return render(spec.prefix + spec.template + spec.postfix, dict(values))
