"""``recipe:NAME``: a recipe (built in, in <home>/recipes, or a file) as a text→text model."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from sandloop.models.params import PlatformParams
from sandloop.models.platforms.base import Platform


class RecipeNodeParams(PlatformParams):
    context: dict[str, Any] = Field(default_factory=dict, description="slot values")


PLATFORM = Platform(
    name="recipe",
    tasks={"text-generation": RecipeNodeParams},
    adapter="sandloop.models.recipe_node:create",
    catalogued=False,
)
