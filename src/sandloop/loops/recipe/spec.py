"""Recipe and pipeline specs as pydantic models, loadable from YAML.

Everything checkable before a model runs is checked here: the template parses and names only
slots the recipe defines, the output schema is a valid JSON schema, the model (or route) exists
and takes the params. Errors name the file, the field and the fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, PrivateAttr, ValidationError, ValidationInfo, model_validator

from sandloop.hashing import realm_key, thread_key
from sandloop.loops.recipe.files import find_recipe_file
from sandloop.loops.recipe.render import TemplateError, slots_used
from sandloop.loops.spec_check import load_spec
from sandloop.loops.spec_files import (
    SPEC_CONFIG,
    SpecError,
    describe_validation_error,
    read_mapping,
)
from sandloop.models.registry import Catalog, ModelInfo, catalog_in, spec_context

NAME_PATTERN = r"^[A-Za-z0-9][\w.\-]*$"

DEFAULT_CRITIC = (
    "You wrote this answer to the request below.\n\nRequest:\n{{ prompt }}\n\nAnswer:\n{{ output }}"
    "\n\n{% if errors %}It has these problems: {{ errors | join('; ') }}.\n{% endif %}"
    'Critique it in two sentences, then score it from 0 to 10 as JSON: {"score": <n>}.'
)
DEFAULT_REVISE = (
    "Request:\n{{ prompt }}\n\nA first answer:\n{{ output }}\n\nCritique:\n{{ critique }}\n\n"
    "{% if errors %}Problems to fix: {{ errors | join('; ') }}.\n{% endif %}"
    "Write a better answer to the request. Answer only with the new answer."
)


class _Spec(BaseModel):
    model_config = SPEC_CONFIG


class Slot(_Spec):
    """Where a context slot's value comes from: exactly one of these."""

    value: Any = Field(None, description="a literal (the default)")
    file: str | None = Field(None, description="a text file, relative to the recipe file")
    search: str | None = Field(None, description="a query over the store: top-k outputs")
    k: int = Field(3, ge=1, le=100)
    deck: str | None = Field(None, description="'builtin' or a file: a card drawn by seed")
    recipe: str | None = Field(None, description="a previous pipeline stage's output, by name")

    @model_validator(mode="before")
    @classmethod
    def _literal(cls, raw: Any) -> Any:
        sources = {"value", "file", "search", "deck", "recipe"}
        if isinstance(raw, dict) and raw and set(raw) - {"k"} <= sources:
            return raw
        return {"value": raw}

    @model_validator(mode="after")
    def _one_source(self) -> Slot:
        given = [s for s in ("file", "search", "deck", "recipe") if getattr(self, s) is not None]
        if len(given) > 1 or (given and self.value is not None):
            raise ValueError(f"a slot takes one source, got {', '.join(given)}")
        return self


class RefineSpec(_Spec):
    """Critique → revise until the output validates (and, with a threshold, the critic's score
    reaches it), for at most ``max_rounds`` revisions."""

    max_rounds: int = Field(2, ge=1, le=20, description="revisions after the first answer")
    critic: str = Field(DEFAULT_CRITIC, description="template: prompt, output, errors")
    revise: str = Field(DEFAULT_REVISE, description="template: prompt, output, critique, errors")
    judge_threshold: float | None = Field(
        None, description="accept only when the critic's JSON score is at least this"
    )
    critic_model: str | None = Field(None, description="default: the recipe's model")


class RecipeSpec(_Spec):
    name: str = Field(pattern=NAME_PATTERN, max_length=120)
    version: str = Field(min_length=1, max_length=40, pattern=r"^[\w.\-+]+$")
    description: str = ""
    prefix: str = ""
    template: str = Field(min_length=1)
    postfix: str = ""
    context: dict[str, Slot] = Field(default_factory=dict)
    output: dict[str, Any] | None = Field(None, description="a JSON schema the output must meet")
    model: str | None = Field(None, description="model ref; or give route:")
    route: str | None = Field(None, description="a route name from your models file")
    params: dict[str, Any] = Field(default_factory=dict)
    refine: RefineSpec | None = None
    #: its models (and critic's) as the catalog it was checked against knows them
    _models: dict[str, ModelInfo] = PrivateAttr(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _pydantic_output(cls, data: Any) -> Any:
        """In Python, ``output`` may be a pydantic model: its JSON schema is what is checked."""
        output = data.get("output") if isinstance(data, dict) else None
        if isinstance(output, type) and issubclass(output, BaseModel):
            return {**data, "output": output.model_json_schema()}
        return data

    @model_validator(mode="after")
    def _checks(self, context: ValidationInfo) -> RecipeSpec:
        if (self.model is None) == (self.route is None):
            raise ValueError("give exactly one of model: (e.g. local:gemma-3-270m) or route:")
        catalog = catalog_in(context)
        info = catalog.lookup(self.model_ref)  # UnknownModel names close matches
        self._models[self.model_ref] = info
        if info.input_type != "text" or info.output_type != "text":
            raise ValueError(f"model: {self.model_ref} is not text→text; recipes need one")
        info.params_for(self.params)  # BadParams is a ValueError, naming the field
        for part in ("prefix", "template", "postfix"):
            try:
                missing = slots_used(getattr(self, part)) - set(self.context) - {"input"}
            except TemplateError as exc:
                raise ValueError(f"{part}: does not parse: {exc}") from None
            if missing:
                raise ValueError(
                    f"{part}: uses {', '.join(sorted(missing))}, which context does not define; "
                    f"add it under context: (with a default) or fix the name"
                )
        if self.output is not None:
            import jsonschema

            try:
                jsonschema.validators.validator_for(self.output).check_schema(self.output)
            except jsonschema.SchemaError as exc:
                raise ValueError(f"output: not a valid JSON schema: {exc.message}") from None
        if self.refine is not None:
            if self.refine.critic_model is not None:
                self._models[self.refine.critic_model] = catalog.lookup(self.refine.critic_model)
            for part in ("critic", "revise"):
                allowed = {"prompt", "output", "errors", "critique"}
                extra = slots_used(getattr(self.refine, part)) - allowed
                if extra:
                    raise ValueError(
                        f"refine.{part}: uses {', '.join(sorted(extra))}; it can use "
                        f"{', '.join(sorted(allowed))}"
                    )
        return self

    @property
    def model_ref(self) -> str:
        return self.model if self.model is not None else f"route:{self.route}"

    def model_info(self, ref: str) -> ModelInfo:
        """The recipe's model or its critic's."""
        return self._models[ref]

    @property
    def realm(self) -> str:
        return realm_key("recipe", self.model_dump(exclude={"description"}))

    def thread(self, inputs: dict[str, Any], seed: int | None) -> str:
        return thread_key(self.realm, {"inputs": inputs, "seed": seed})


class Stage(_Spec):
    recipe: str
    context: dict[str, Any] = Field(default_factory=dict)
    model: str | None = None


class PipelineSpec(_Spec):
    """Recipes in order: each stage's input is the previous stage's output."""

    name: str = Field(pattern=NAME_PATTERN, max_length=120)
    description: str = ""
    stages: list[Stage] = Field(min_length=1)


# -- finding recipes -------------------------------------------------------------------------


def load_recipe(name_or_path: str, catalog: Catalog, model: str | None = None) -> RecipeSpec:
    """Load and check a recipe (built-in, in the catalog's home, or a path); ``model`` replaces
    its model (or route) for this use."""
    path = find_recipe_file(name_or_path, catalog.home)
    data = read_mapping(path)
    data.setdefault("name", path.stem)
    if model is not None:
        # Another model takes other parameters: keep the ones it shares with the recipe's.
        data.pop("route", None)
        data["model"] = model
        accepted = catalog.lookup(model).params_model.model_fields
        data["params"] = {k: v for k, v in (data.get("params") or {}).items() if k in accepted}
    for slot in (data.get("context") or {}).values():
        if isinstance(slot, dict) and isinstance(slot.get("file"), str):
            slot["file"] = str((path.parent / slot["file"]).resolve())
    try:
        return RecipeSpec.model_validate(data, context=spec_context(catalog))
    except ValidationError as exc:
        raise SpecError(describe_validation_error(exc, str(path))) from None


def load_pipeline(path: Path, catalog: Catalog) -> PipelineSpec:
    return load_spec(path, PipelineSpec, catalog)


def check_recipe_ref(ref: str, catalog: Catalog) -> None:
    """A ``recipe:NAME`` model reference names a recipe that loads and checks (the registry
    knows it only by name; the recipe's own checks are here)."""
    if ref.startswith("recipe:"):
        load_recipe(ref.removeprefix("recipe:"), catalog)
