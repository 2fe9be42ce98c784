"""A recipe as a network node: text in, the recipe's accepted output out.

The recipe's model calls happen inside the node's one step (its refine rounds included); their
count, the recipe's version and how it ended go in the step's metadata. An output that never
validates fails the step as ``InvalidOutput``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sandloop.config import Settings
from sandloop.models.base import AdapterContext, CallContext, ModelAdapter, ModelInput, ModelOutput
from sandloop.models.errors import InvalidInput, InvalidOutput
from sandloop.models.registry import ModelInfo, catalog_for
from sandloop.records import dumps

#: The factory's adapter for a model (passed in: the factory makes this adapter too).
AdapterFor = Callable[[ModelInfo], ModelAdapter]


class RecipeNodeAdapter:
    def __init__(self, ref: str, recipe: str, settings: Settings, adapter_for: AdapterFor) -> None:
        from sandloop.loops.recipe.spec import load_recipe

        self.ref, self.settings, self.adapter_for = ref, settings, adapter_for
        self.spec = load_recipe(recipe, catalog_for(settings))

    def generate(
        self, model_input: ModelInput, params: dict[str, Any], ctx: CallContext
    ) -> ModelOutput:
        from datetime import UTC, datetime

        from sandloop.loops.protocol import Outcome
        from sandloop.loops.recipe.context import prompt_for, resolve_context
        from sandloop.loops.recipe.engine import RefineLoop

        if model_input.text is None:
            raise InvalidInput("a recipe takes text", model=self.ref)
        spec = self.spec
        values = resolve_context(spec, model_input.text, params.get("context", {}), ctx.seed)
        # The node's step is the recipe's thread: each call's seed derives from it.
        loop = RefineLoop(spec, prompt_for(spec, values), ctx.step_key, ctx.seed)
        while loop.stop_reason(datetime.now(UTC)) is None:
            call = loop.plan()
            adapter = self.adapter_for(spec.model_info(call.model))
            out = adapter.generate(
                ModelInput("text", text=call.input_value),
                call.params,
                CallContext(call.seed, ctx.step_key, call.index),
            )
            now = datetime.now(UTC)
            loop.advance(call, Outcome(now, now, value=out.text or ""))
        outcome = loop.outcome()
        if not outcome.accepted:
            raise InvalidOutput(
                f"recipe {spec.name} v{spec.version} never validated: {'; '.join(outcome.errors)}",
                model=self.ref,
            )
        text = outcome.parsed if isinstance(outcome.parsed, str) else dumps(outcome.parsed)
        return ModelOutput(
            "text",
            text=text,
            metadata={
                "recipe": {
                    "promptName": spec.name,
                    "promptVersion": spec.version,
                    "status": outcome.status,
                    "calls": len(outcome.attempts),
                }
            },
        )


def create(info: ModelInfo, ctx: AdapterContext) -> RecipeNodeAdapter:
    return RecipeNodeAdapter(info.ref, info.name, ctx.settings, ctx.adapter)
