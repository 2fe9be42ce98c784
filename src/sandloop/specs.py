"""The specs users write, as pydantic models loadable from YAML or JSON.

Validation happens here, before anything runs or is written: every model must exist, its
parameters must be ones it accepts, and a network must close as a type-consistent cycle (the
output type of model i is the input type of model i+1 mod n). Errors name the field and the fix.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sandloop.keys import realm_key, thread_key
from sandloop.models.registry import IOType, ModelInfo, lookup


class SpecError(ValueError):
    """A spec file that cannot be read or does not validate; the message is one line for the CLI."""


#: The longest text a spec field may hold. Spec text ends up in flow-run parameters, task-run
#: names and Prefect events, which have size limits of their own; a bound here is one clear
#: error instead of a failure half-way through a run.
MAX_TEXT_CHARS = 100_000
#: The longest wait any pace may ask for (a year): datetimes overflow past ~10^11 seconds.
MAX_WAIT_S = 365 * 24 * 3600.0
#: Deeper nesting than this is not a spec anyone wrote by hand (and recursion has limits).
MAX_NESTING = 64


#: Every spec kind's configuration, strict at the boundary: a spec says what it means (``true``
#: is not ``1``, ``"5"`` is not 5), numbers are finite, and text is bounded.
SPEC_CONFIG = ConfigDict(
    extra="forbid",
    frozen=True,
    strict=True,
    allow_inf_nan=False,
    str_max_length=MAX_TEXT_CHARS,
)


class _Spec(BaseModel):
    model_config = SPEC_CONFIG


class NetworkEntry(_Spec):
    """One node of a network: a model, an optional role name, and its parameters."""

    model: str = Field(description="model reference 'platform:name', e.g. 'dummy:text'")
    role: str | None = Field(
        None,
        max_length=64,
        pattern=r"^[\w][\w .\-]*$",
        description="a name for this node, when a model plays several",
    )
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        return {"model": value} if isinstance(value, str) else value

    @field_validator("model")
    @classmethod
    def _model_exists(cls, ref: str) -> str:
        lookup(ref)  # raises UnknownModel (a ValueError) with suggestions
        return ref

    @model_validator(mode="after")
    def _params_fit_model(self) -> NetworkEntry:
        info = lookup(self.model)
        try:
            info.params_model.model_validate(self.params)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'params'}: {e['msg']}" for e in exc.errors()
            )
            accepted = ", ".join(info.params_model.model_fields)
            raise ValueError(
                f"bad params for {self.model}: {problems} (accepted: {accepted})"
            ) from None
        return self

    @property
    def info(self) -> ModelInfo:
        return lookup(self.model)

    @property
    def facet(self) -> str:
        """The 'who' of the address: the model, qualified by role when one is given."""
        return f"{self.model}#{self.role}" if self.role else self.model

    def resolved_params(self) -> dict[str, Any]:
        """Defaults filled in: what the adapter receives and what the key hashes."""
        merged = {**self.info.default_params, **self.params}
        return self.info.params_model.model_validate(merged).model_dump()


class NetworkSpec(_Spec):
    name: str = Field(min_length=1, max_length=120, pattern=r"^[\w][\w .\-]*$")
    description: str = ""
    models: list[NetworkEntry] = Field(min_length=1)

    @model_validator(mode="after")
    def _closes_as_cycle(self) -> NetworkSpec:
        n = len(self.models)
        for i, entry in enumerate(self.models):
            nxt = self.models[(i + 1) % n]
            out_type, in_type = entry.info.output_type, nxt.info.input_type
            if out_type != in_type:
                raise ValueError(
                    f"network {self.name!r} does not close: model {i} ({entry.model}) outputs "
                    f"{out_type}, but model {(i + 1) % n} ({nxt.model}) takes {in_type}; "
                    f"insert a {out_type}→{in_type} model between them or reorder the list"
                )
        return self

    @property
    def realm(self) -> str:
        """The description is documentation, not behaviour: editing it keeps the realm."""
        return realm_key("network", self.model_dump(exclude={"description"}))

    @property
    def input_type(self) -> IOType:
        return self.models[0].info.input_type


class NoPace(_Spec):
    kind: Literal["none"] = "none"


class _Pace(_Spec):
    hand_off_after_s: float = Field(
        30.0,
        ge=0,
        le=MAX_WAIT_S,
        description="in a deployment, a longer wait ends the flow run and schedules its "
        "continuation at the due time instead of holding a worker",
    )


class ConstantPace(_Pace):
    kind: Literal["constant"] = "constant"
    seconds: float = Field(ge=0, le=MAX_WAIT_S)


class ExponentialPace(_Pace):
    """delay(step) = min(cap, base * factor**step)."""

    kind: Literal["exponential"] = "exponential"
    base: float = Field(1.0, ge=0, le=MAX_WAIT_S)
    factor: float = Field(1.5, ge=1, le=1000)
    cap: float = Field(600.0, ge=0, le=MAX_WAIT_S)


class AgeBucket(_Spec):
    younger_than_s: float = Field(gt=0)
    delay_s: float = Field(ge=0, le=MAX_WAIT_S)


class AgeBucketPace(_Pace):
    """PANIC's 'slow down over time': the delay depends on how old the run is."""

    kind: Literal["age_buckets"] = "age_buckets"
    buckets: list[AgeBucket] = Field(
        default_factory=lambda: [
            AgeBucket(younger_than_s=600, delay_s=1),
            AgeBucket(younger_than_s=3600, delay_s=15),
        ]
    )
    older_delay_s: float = Field(600.0, ge=0, le=MAX_WAIT_S)

    @field_validator("buckets")
    @classmethod
    def _ascending(cls, buckets: list[AgeBucket]) -> list[AgeBucket]:
        ages = [b.younger_than_s for b in buckets]
        if ages != sorted(ages):
            raise ValueError("buckets must be sorted by younger_than_s, youngest first")
        return buckets


PacePolicy = Annotated[
    NoPace | ConstantPace | ExponentialPace | AgeBucketPace, Field(discriminator="kind")
]


class StopConditions(_Spec):
    """Composable: the run stops at the first that holds."""

    max_steps: int | None = Field(10, ge=1, description="total steps in the thread")
    max_duration_s: float | None = Field(None, gt=0, description="wall time of one session")
    stop_on_repeat: bool = Field(
        True, description="stop when an output repeats exactly (only for seeded runs)"
    )
    converge_above: float | None = Field(
        None,
        gt=0,
        le=1,
        description="stop when an output's embedding has at least this cosine similarity "
        "to one of the last converge_window outputs",
    )
    converge_window: int = Field(10, ge=1, le=1000)


class RunSpec(_Spec):
    network: NetworkSpec
    genesis: str = Field(min_length=1, description="the first input: text, or an image file path")
    seed: int | None = Field(None, ge=0, lt=2**63)
    stop: StopConditions = Field(default_factory=StopConditions)
    pace: PacePolicy = Field(default_factory=NoPace)

    @model_validator(mode="after")
    def _genesis_fits_first_model(self) -> RunSpec:
        first = self.network.models[0]
        if first.info.input_type == "image" and not Path(self.genesis).is_file():
            raise ValueError(
                f"genesis: network {self.network.name!r} starts with {first.model}, which takes an "
                f"image; pass the path of an image file, not {self.genesis[:40]!r}"
            )
        return self

    def thread_inputs(self, genesis_hash: str | None = None) -> dict[str, Any]:
        """What makes this occurrence unique; an image genesis counts by its content hash."""
        return {"genesis": genesis_hash or self.genesis, "seed": self.seed}

    def thread(self, genesis_hash: str | None = None) -> str:
        return thread_key(self.network.realm, self.thread_inputs(genesis_hash))


#: Spec files are hand-written; anything larger is a mistake (or an attack on the parser).
MAX_SPEC_BYTES = 4 * 1024 * 1024


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys without a word; a spec must not."""


def _mapping_without_duplicates(loader: yaml.SafeLoader, node: yaml.MappingNode) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if isinstance(key, list | dict):
            raise yaml.constructor.ConstructorError(
                None, None, "a mapping key must be text or a number", key_node.start_mark
            )
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates
)


def _no_duplicate_json_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _depth(value: Any, limit: int) -> int:
    """Nesting depth, counted without recursion (so no input can exhaust the stack here)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            if deepest > limit:
                return deepest
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return deepest


def read_text_file(path: Path, max_bytes: int = MAX_SPEC_BYTES) -> str:
    """A spec file's text; anything that is not a regular file of UTF-8 text is refused in one
    line (a FIFO would block forever, a device would never end)."""
    try:
        if not path.exists():
            raise SpecError(f"{path}: no such file")
        if not path.is_file():
            raise SpecError(f"{path}: not a regular file")
        with open(path, "rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise SpecError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise SpecError(f"{path}: larger than {max_bytes // 1024 // 1024} MiB; not a spec file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    if "\0" in text:
        raise SpecError(f"{path}: contains NUL characters (UTF-16?); save it as UTF-8")
    return text.removeprefix("\ufeff")


def read_mapping(path: Path) -> dict[str, Any]:
    """Read a YAML or JSON file into a dict, with one-line errors."""
    text = read_text_file(path)
    kind = "json" if path.suffix == ".json" else path.suffix.lstrip(".") or "YAML"
    try:
        if kind == "json":
            data = json.loads(text, object_pairs_hook=_no_duplicate_json_keys)
        else:
            data = yaml.load(text, Loader=_UniqueKeyLoader)
    except (yaml.YAMLError, ValueError) as exc:  # JSONDecodeError is a ValueError
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SpecError(f"{path}: not valid {kind}: {first_line}") from None
    except RecursionError:
        raise SpecError(f"{path}: nested too deeply to be a spec") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    if _depth(data, MAX_NESTING) > MAX_NESTING:
        raise SpecError(f"{path}: nested more than {MAX_NESTING} levels deep; not a spec")
    return data


SpecKind = Literal["network", "dialogue", "recipe", "pipeline"]
_KIND_FIELDS: dict[str, SpecKind] = {
    "models": "network",
    "actors": "dialogue",
    "template": "recipe",
    "stages": "pipeline",
}


def spec_kind(data: dict[str, Any], source: str) -> SpecKind:
    """Which kind of spec a file holds, by the field only that kind has."""
    for field, kind in _KIND_FIELDS.items():
        if field in data:
            return kind
    raise SpecError(
        f"{source}: not a network (models:), dialogue (actors:), recipe (template:) or "
        "pipeline (stages:) spec"
    )


def describe_validation_error(exc: ValidationError, source: str) -> str:
    """One line: 'source: field.path: message; other.field: message' (an error is one line)."""
    problems = []
    for err in exc.errors():
        loc = ".".join(
            str(p) if str(p).isprintable() else repr(p)
            for p in err["loc"]
            if not str(p).startswith("function-")
        )
        msg = " ".join(str(err["msg"]).removeprefix("Value error, ").split())
        problems.append(f"{loc + ': ' if loc else ''}{msg}")
    return f"{source}: {'; '.join(problems)}"


SpecT = TypeVar("SpecT", bound=BaseModel)


def load_spec(path: Path, spec_type: type[SpecT], **overrides: Any) -> SpecT:
    """A spec file validated as ``spec_type``, its name defaulting to the file's stem; errors are
    one line per problem, naming the file and the field."""
    data = read_mapping(path)
    data.setdefault("name", path.stem)
    data.update(overrides)
    try:
        return spec_type.model_validate(data)
    except ValidationError as exc:
        raise SpecError(describe_validation_error(exc, str(path))) from None


def load_network(path: Path) -> NetworkSpec:
    return load_spec(path, NetworkSpec)
