"""A recipe as a network node: text in, the recipe's accepted output out.

The recipe's model calls happen inside the node's one step (its refine rounds included); their
count, the recipe's version and how it ended go in the step's metadata. An output that never
validates fails the step as ``InvalidOutput``.
"""

from __future__ import annotations

from typing import Any

from sandloop.config import Settings
from sandloop.models.base import CallContext, ModelInput, ModelOutput
from sandloop.models.errors import InvalidInput, InvalidOutput
from sandloop.records import dumps


class RecipeNodeAdapter:
    def __init__(self, ref: str, recipe: str, settings: Settings) -> None:
        from sandloop.recipes.spec import load_recipe

        self.ref, self.settings = ref, settings
        self.spec = load_recipe(recipe, settings.local_dir)

    def generate(
        self, model_input: ModelInput, params: dict[str, Any], ctx: CallContext
    ) -> ModelOutput:
        from sandloop.keys import derive_seed
        from sandloop.models.factory import get_adapter
        from sandloop.models.registry import lookup
        from sandloop.recipes.context import prompt_for, resolve_context
        from sandloop.recipes.refine import run_recipe

        if model_input.text is None:
            raise InvalidInput("a recipe takes text", model=self.ref)
        spec = self.spec
        values = resolve_context(spec, model_input.text, params.get("context", {}), ctx.seed)

        def call(role: str, model: str, prompt: str, index: int) -> str:
            info = lookup(model)
            own = spec.params if model == spec.model_ref else {}
            merged = info.params_model.model_validate({**info.default_params, **own}).model_dump()
            seed = derive_seed(ctx.seed, ctx.step_key, index) if ctx.seed is not None else None
            out = get_adapter(info, self.settings).generate(
                ModelInput("text", text=prompt), merged, CallContext(seed, ctx.step_key, index)
            )
            return out.text or ""

        outcome = run_recipe(spec, prompt_for(spec, values), call)
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
