"""What models exist, what they take and give, which parameters they accept and what they cost.

Plain data with no model libraries imported, so specs validate in microseconds and the CLI lists
models without loading torch. The catalog is YAML: the built-in ``catalog.yaml`` plus the user's
models file, which adds models and routes (or overrides built-ins) without code. Refs outside the
catalog still resolve when their shape says what they are: ``local:<hub-id|folder>[@task]``,
``openai:<model>[@task]``, ``hf:<hub-id>[@task]``, ``replicate:<owner/name[:version]>@task``.

A catalog belongs to one home and is passed to whatever resolves refs; specs receive it through
pydantic's validation context. Nothing here is global, so two homes in one process never see
each other's models.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import cache, lru_cache
from importlib import resources
from pathlib import Path
from stat import S_ISREG
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo

from sandloop.errors import SandloopError
from sandloop.models.io_types import TASK_IO, IOType
from sandloop.models.params import PlatformParams
from sandloop.models.platforms import PLATFORMS as ALL_PLATFORMS
from sandloop.models.platforms.base import Platform
from sandloop.models.platforms.recipe import RecipeNodeParams
from sandloop.models.platforms.route import RouteParams

if TYPE_CHECKING:
    from sandloop.config import Settings

#: Platforms a models file may name (``route:`` and ``recipe:`` are refs to other refs).
PLATFORMS = tuple(name for name, p in ALL_PLATFORMS.items() if p.catalogued)

_ROUTE_NAME = re.compile(r"^[\w][\w.\-]*$")


class UnknownModel(SandloopError, ValueError):
    """A model reference that names no known model; the message lists close matches."""


class RegistryError(SandloopError, ValueError):
    """A models file that cannot be read or does not validate; names the file and the field."""


class BadParams(SandloopError, ValueError):
    """Parameters a model does not take: one message, wherever they were given (a spec, a
    route, a models file), naming each problem and what the model accepts."""


def params_problem(ref: str, params_model: type[PlatformParams], exc: ValidationError) -> str:
    problems = "; ".join(
        f"{'.'.join(map(str, e['loc'])) or 'params'}: {e['msg']}" for e in exc.errors()
    )
    return f"bad params for {ref}: {problems} (accepted: {', '.join(params_model.model_fields)})"


class CostRates(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    per_call: float = Field(0.0, ge=0)
    per_1k_input_tokens: float = Field(0.0, ge=0)
    per_1k_output_tokens: float = Field(0.0, ge=0)

    def estimate(self, usage: dict[str, Any]) -> float:
        tokens_in = usage.get("input_tokens") or 0
        tokens_out = usage.get("output_tokens") or 0
        return (
            self.per_call
            + tokens_in / 1000 * self.per_1k_input_tokens
            + tokens_out / 1000 * self.per_1k_output_tokens
        )


class SampleRates(BaseModel):
    """The sample rates an audio model reads; audio outside them is refused before a step."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    min_hz: int = Field(1, ge=1, le=768_000)
    max_hz: int = Field(768_000, ge=1, le=768_000)


class RateLimit(BaseModel):
    """Calls per minute across every worker (a Prefect rate limit: slots that decay)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    per_minute: float = Field(gt=0, le=60_000, description="calls per minute, all workers")


@dataclass(frozen=True)
class Limits:
    """What a provider allows, held across every worker by Prefect's global concurrency
    limits (created on first use, named ``sandloop-<model>``, visible in the UI)."""

    max_concurrent: int | None = None
    per_minute: float | None = None

    def __bool__(self) -> bool:
        return self.max_concurrent is not None or self.per_minute is not None


@dataclass(frozen=True)
class ModelInfo:
    ref: str
    input_type: IOType
    output_type: IOType
    description: str
    params_model: type[PlatformParams]
    cost_hint: str = "free"
    default_params: dict[str, Any] = field(default_factory=dict)
    task: str = "text-generation"
    source: str | None = None  # the platform's model id, when the ref is an alias
    cost_usd: CostRates | None = None
    max_input_chars: int | None = None  # routes skip it for longer inputs
    runs_here: bool | None = None  # overrides the platform's default (Ollama is openai, local)
    limits: Limits = field(default_factory=Limits)
    sample_rates: SampleRates | None = None  # an audio model's input rates, when it says

    @property
    def platform(self) -> str:
        return self.ref.split(":", 1)[0]

    @property
    def name(self) -> str:
        """The ref's name without platform or task: ``facebook/bart-large-cnn``."""
        return self.ref.split(":", 1)[1].split("@", 1)[0]

    @property
    def model_id(self) -> str:
        """What the platform is asked for."""
        return self.source or self.name

    def params_for(self, given: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The model's defaults under ``given``, validated: what the adapter receives and what
        the invocation key hashes, so two specs that mean the same call share keys."""
        merged = {**self.default_params, **(given or {})}
        try:
            return self.params_model.model_validate(merged).model_dump()
        except ValidationError as exc:
            raise BadParams(params_problem(self.ref, self.params_model, exc)) from None

    def refuses_rate(self, sample_rate: int) -> str | None:
        """Why this model will not read audio at ``sample_rate``, or None if it will."""
        rates = self.sample_rates
        if rates is None or rates.min_hz <= sample_rate <= rates.max_hz:
            return None
        return f"{self.ref} takes audio at {rates.min_hz}–{rates.max_hz} Hz, not {sample_rate} Hz"

    @property
    def sovereign(self) -> bool:
        """Runs on hardware the user controls: routes try these first."""
        if self.runs_here is not None:
            return self.runs_here
        platform = ALL_PLATFORMS.get(self.platform)
        return platform is not None and platform.sovereign


class CatalogModel(BaseModel):
    """One model in a models file."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    ref: str = Field(description="platform:name[@task]")
    task: str | None = Field(None, description="what it does; default: from the ref or platform")
    source: str | None = Field(None, description="the platform's model id, if ref is an alias")
    description: str = ""
    params: dict[str, Any] = Field(default_factory=dict)
    cost: str | None = None
    cost_usd: CostRates | None = None
    max_input_chars: int | None = Field(
        None, ge=1, description="the longest input it takes; routes skip it for longer ones"
    )
    sovereign: bool | None = Field(
        None, description="runs on your own hardware (e.g. Ollama); default: local and dummy"
    )
    max_concurrent: int | None = Field(
        None, ge=1, le=10_000, description="calls in flight at once, across every worker"
    )
    rate_limit: RateLimit | None = None
    sample_rates: SampleRates | None = Field(
        None, description="an audio model's input sample rates (min_hz, max_hz)"
    )


class RouteSpec(BaseModel):
    """An ordered list of candidate models for one job; the router tries them in turn."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    candidates: list[str] = Field(min_length=1, description="model refs, in order of preference")
    sovereign_first: bool = Field(True, description="try local models before remote ones")
    cooldown_s: float = Field(60.0, ge=0, description="how long a failing candidate is skipped")
    params: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="per-candidate parameters, by model ref"
    )
    max_concurrent: int | None = Field(
        None, ge=1, le=10_000, description="calls of the route in flight at once, all workers"
    )
    rate_limit: RateLimit | None = None


class ModelsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    models: list[CatalogModel] = Field(default_factory=list)
    routes: dict[str, RouteSpec] = Field(default_factory=dict)


def _split_ref(ref: str) -> tuple[str, str, str | None]:
    """``platform:name@task`` → (platform, name, task or None)."""
    if ":" not in ref:
        raise UnknownModel(f"model {ref!r} has no platform: write it as 'platform:name'")
    platform, rest = ref.split(":", 1)
    name, _, task = rest.partition("@")
    return platform, name, task or None


def _build(entry: CatalogModel, origin: str) -> ModelInfo:
    platform_name, name, ref_task = _split_ref(entry.ref)
    where = f"{origin}: model {entry.ref!r}"
    if platform_name not in PLATFORMS:
        raise RegistryError(f"{where}: unknown platform; known: {', '.join(PLATFORMS)}")
    platform = ALL_PLATFORMS[platform_name]
    if not name:
        raise RegistryError(f"{where}: the ref has no name after '{platform_name}:'")
    task = entry.task or ref_task or platform.default_task
    if task is None:
        raise RegistryError(f"{where}: say what it does with task: (one of {_tasks(platform)})")
    if ref_task and entry.task and ref_task != entry.task:
        raise RegistryError(f"{where}: the ref says @{ref_task} but task is {entry.task!r}")
    params_model = platform.tasks.get(task)
    if params_model is None:
        raise RegistryError(
            f"{where}: {platform_name} does not do {task!r}; it does {_tasks(platform)}"
        )
    try:
        params_model.model_validate(entry.params)
    except ValidationError as exc:
        raise RegistryError(f"{origin}: {params_problem(entry.ref, params_model, exc)}") from None
    input_type, output_type = TASK_IO[task]
    return ModelInfo(
        ref=entry.ref,
        input_type=input_type,
        output_type=output_type,
        description=entry.description or f"{task} with {entry.source or name} on {platform_name}",
        params_model=params_model,
        cost_hint=entry.cost or platform.cost_hint,
        default_params=dict(entry.params),
        task=task,
        source=entry.source,
        cost_usd=entry.cost_usd,
        max_input_chars=entry.max_input_chars,
        runs_here=entry.sovereign,
        limits=_limits(entry.max_concurrent, entry.rate_limit),
        sample_rates=entry.sample_rates,
    )


def _limits(max_concurrent: int | None, rate: RateLimit | None) -> Limits:
    return Limits(max_concurrent, rate.per_minute if rate else None)


def _tasks(platform: Platform) -> str:
    return ", ".join(platform.tasks)


def read_models_file(path: Path) -> ModelsFile:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise RegistryError(f"cannot read models file {path}: {exc}") from None
    try:
        parsed = ModelsFile.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(map(str, first["loc"])) or "top level"
        raise RegistryError(f"{path}: {loc}: {first['msg']}") from None
    for name in parsed.routes:
        if not _ROUTE_NAME.match(name):
            raise RegistryError(f"{path}: routes.{name}: a route name is letters, digits, . _ -")
    return parsed


@dataclass(frozen=True)
class Catalog:
    """The models and routes one home knows: the built-in catalog plus its models file. It is
    passed to whatever resolves a ref (specs get it through pydantic's validation context), so a
    spec is valid or invalid for the home it names, and nothing global changes between homes."""

    models: dict[str, ModelInfo]
    routes: dict[str, RouteSpec]
    user_file: Path | None = None
    home: Path = field(default_factory=lambda: Path.home() / ".sandloop")  # user recipes

    def lookup(self, ref: str) -> ModelInfo:
        """Resolve ``platform:name[@task]``; raise ``UnknownModel`` with what the user may
        have meant."""
        known = self.models
        if ":" not in ref:
            close = difflib.get_close_matches(ref, [i.name for i in known.values()], n=1)
            hint = f"; did you mean {self._ref_for_name(close[0])!r}?" if close else ""
            raise UnknownModel(f"model {ref!r} has no platform: write it as 'platform:name'{hint}")
        if ref in known:
            return known[ref]
        platform_name, name, task = _split_ref(ref)
        if platform_name in _RESOLVERS:
            return _RESOLVERS[platform_name](self, ref, name)
        if platform_name not in PLATFORMS:
            others = " and ".join(f"{n}:NAME" for n in _RESOLVERS)
            raise UnknownModel(
                f"unknown platform {platform_name!r} in {ref!r}: known platforms are "
                f"{', '.join(PLATFORMS)}; {others} also work"
            )
        platform = ALL_PLATFORMS[platform_name]
        if task is not None and task not in TASK_IO:
            close = difflib.get_close_matches(task, list(TASK_IO), n=1)
            hint = f" (did you mean @{close[0]}?)" if close else ""
            raise UnknownModel(
                f"unknown task {task!r} in {ref!r}{hint}; tasks: {', '.join(TASK_IO)}"
            )
        if task is not None and (base := known.get(f"{platform_name}:{name}")) is not None:
            variant = CatalogModel(ref=ref, source=base.source, cost_usd=base.cost_usd)
            return replace(_build(variant, "ref"), limits=base.limits)  # the same provider model
        info = _dynamic(platform, name, task, ref)
        if info is not None:
            return info
        close = difflib.get_close_matches(ref, list(known), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        extra = f" ({platform.naming})" if platform.naming else ""
        raise UnknownModel(
            f"unknown model {ref!r}{hint}{extra}; `sandloop models` lists the known ones"
        )

    def route(self, name: str) -> RouteSpec:
        if name not in self.routes:
            known = ", ".join(sorted(self.routes)) or "none are defined"
            where = self.user_file or "your models file"
            raise UnknownModel(f"unknown route {name!r} ({known}); define routes in {where}")
        return self.routes[name]

    def _ref_for_name(self, name: str) -> str:
        return next(i.ref for i in self.models.values() if i.name == name)


@cache
def _builtin() -> ModelsFile:
    text = resources.files("sandloop.models").joinpath("catalog.yaml").read_text("utf-8")
    return ModelsFile.model_validate(yaml.safe_load(text))


def load_catalog(user_file: Path | None, home: Path | None = None) -> Catalog:
    """The built-in catalog plus ``user_file`` (when it exists), finding user recipes under
    ``home``. Built once per version of the file: every model call resolves its ref, and a
    changed file is a new catalog."""
    version = None
    if user_file is not None:
        try:
            found = user_file.stat()
        except OSError:  # no models file: the built-in catalog alone
            found = None
        if found is not None and S_ISREG(found.st_mode):
            version = (found.st_mtime_ns, found.st_size, found.st_ino)
    return _load_catalog(user_file, version, home)


@lru_cache(maxsize=32)
def _load_catalog(
    user_file: Path | None, version: tuple[int, int, int] | None, home: Path | None
) -> Catalog:
    files = [("built-in catalog", _builtin())]
    if user_file is not None and version is not None:  # the file exists
        files.append((str(user_file), read_models_file(user_file)))
    models: dict[str, ModelInfo] = {}
    routes: dict[str, RouteSpec] = {}
    for origin, parsed in files:
        for entry in parsed.models:
            models[entry.ref] = _build(entry, origin)
        routes.update(parsed.routes)
    if home is None:
        return Catalog(models, routes, user_file)
    return Catalog(models, routes, user_file, home)


def catalog_for(settings: Settings) -> Catalog:
    """The catalog of the home ``settings`` are for."""
    return load_catalog(settings.models_file_path, settings.local_dir)


#: Where a spec's catalog is in pydantic's validation context.
CONTEXT_KEY = "catalog"


def catalog_in(info: ValidationInfo) -> Catalog:
    """The catalog a spec is checked against: the one its caller put in pydantic's validation
    context (``spec_context``); without one (a spec built by hand in a notebook), the catalog of
    the home the environment names."""
    context = info.context
    found = context.get(CONTEXT_KEY) if isinstance(context, dict) else None
    if isinstance(found, Catalog):
        return found
    from sandloop.config import Settings

    return catalog_for(Settings())


def spec_context(catalog: Catalog) -> dict[str, Any]:
    """The validation context that checks a spec against ``catalog``."""
    return {CONTEXT_KEY: catalog}


def _dynamic(platform: Platform, name: str, task: str | None, ref: str) -> ModelInfo | None:
    """Refs whose shape says what they are, outside the catalog."""
    if not platform.matches(name):
        return None
    if task is None and platform.default_task is None:
        example = next(iter(platform.tasks))
        raise UnknownModel(
            f"{ref!r}: say what the {platform.name} model does, e.g. '{ref}@{example}' "
            f"(one of {_tasks(platform)}), or add it to your models file"
        )
    entry = CatalogModel(ref=ref)
    try:
        return _build(entry, "model ref")
    except RegistryError as exc:
        raise UnknownModel(str(exc)) from None


def _route_info(catalog: Catalog, ref: str, name: str) -> ModelInfo:
    spec = catalog.route(name)
    candidates = []
    for candidate in spec.candidates:
        if candidate.startswith("route:"):
            raise UnknownModel(f"route {name!r}: a candidate cannot be a route ({candidate})")
        candidates.append(catalog.lookup(candidate))
    io_types = {(c.input_type, c.output_type) for c in candidates}
    if len(io_types) > 1:
        found = ", ".join(f"{c.ref} ({c.input_type}→{c.output_type})" for c in candidates)
        raise UnknownModel(f"route {name!r} mixes input/output types: {found}")
    for info in candidates:
        try:
            info.params_for(spec.params.get(info.ref))
        except BadParams as exc:
            raise UnknownModel(f"route {name!r}: {exc}") from None
    unknown = set(spec.params) - set(spec.candidates)
    if unknown:
        raise UnknownModel(f"route {name!r}: params for models it does not list: {sorted(unknown)}")
    first = candidates[0]
    return ModelInfo(
        ref=ref,
        input_type=first.input_type,
        output_type=first.output_type,
        description=f"route over {', '.join(spec.candidates)}",
        params_model=RouteParams,
        cost_hint=ALL_PLATFORMS["route"].cost_hint,
        task=first.task,
        limits=_limits(spec.max_concurrent, spec.rate_limit),
    )


def _recipe_info(catalog: Catalog, ref: str, name: str) -> ModelInfo:
    """A recipe (built-in, in <home>/recipes, or a file path) used as a text→text model. Only
    its file is read here; the specs that use it check the recipe itself
    (`loops.recipe.spec.check_recipe_ref`)."""
    from sandloop.loops.recipe.files import find_recipe_file
    from sandloop.loops.spec_files import SpecError, read_mapping

    try:
        path = find_recipe_file(name, catalog.home)
        data = read_mapping(path)
    except SpecError as exc:
        raise UnknownModel(str(exc)) from None
    model = data.get("model") or f"route:{data.get('route')}"
    return ModelInfo(
        ref=ref,
        input_type="text",
        output_type="text",
        description=f"recipe {data.get('name', path.stem)} v{data.get('version')} on {model}",
        params_model=RecipeNodeParams,
        cost_hint=f"that of {model}, per refine round",
        task="text-generation",
    )


#: How refs to other refs are resolved, by their platform (which is in the table all the same).
_RESOLVERS: dict[str, Callable[[Catalog, str, str], ModelInfo]] = {
    "route": _route_info,
    "recipe": _recipe_info,
}
