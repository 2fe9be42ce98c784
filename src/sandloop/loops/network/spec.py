"""A network run's spec: the cycle of models, the genesis and seed, when to stop, how to pace.

Every model must exist, its parameters must be ones it accepts, and a network must close as a
type-consistent cycle (the output type of model i is the input type of model i+1 mod n).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, PrivateAttr, ValidationInfo, field_validator, model_validator

from sandloop.hashing import realm_key, thread_key
from sandloop.loops.recipe.spec import check_recipe_ref
from sandloop.loops.spec_check import load_spec
from sandloop.loops.spec_files import MAX_WAIT_S, SPEC_CONFIG
from sandloop.models.audio import UndecodableAudio, audio_facts
from sandloop.models.io_types import BLOB_TYPES, IOType
from sandloop.models.registry import Catalog, ModelInfo, catalog_in


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
    _info: ModelInfo = PrivateAttr()  # the model, as the catalog it was checked against knows it

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        return {"model": value} if isinstance(value, str) else value

    @field_validator("model")
    @classmethod
    def _model_exists(cls, ref: str, info: ValidationInfo) -> str:
        catalog = catalog_in(info)
        catalog.lookup(ref)  # raises UnknownModel (a ValueError) with suggestions
        check_recipe_ref(ref, catalog)
        return ref

    @model_validator(mode="after")
    def _params_fit_model(self, info: ValidationInfo) -> NetworkEntry:
        self._info = catalog_in(info).lookup(self.model)
        self._info.params_for(self.params)  # BadParams is a ValueError
        return self

    @property
    def info(self) -> ModelInfo:
        return self._info

    @property
    def facet(self) -> str:
        """The 'who' of the address: the model, qualified by role when one is given."""
        return f"{self.model}#{self.role}" if self.role else self.model

    def resolved_params(self) -> dict[str, Any]:
        """Defaults filled in: what the adapter receives and what the key hashes."""
        return self.info.params_for(self.params)


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
                    f"insert {'an' if out_type[0] in 'aeiou' else 'a'} {out_type}→{in_type} "
                    "model between them or reorder the list"
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


def _check_audio_genesis(path: Path, info: ModelInfo) -> None:
    """A sound the first model can read: decodable, at a rate it takes (its header says)."""
    try:
        facts = audio_facts(path.read_bytes())
    except UndecodableAudio as exc:
        raise ValueError(
            f"genesis: {path} cannot be decoded: {exc}; pass a WAV, FLAC or MP3 file"
        ) from None
    refused = info.refuses_rate(facts.sample_rate)
    if refused is not None:
        raise ValueError(
            f"genesis: {path}: {refused}; resample it (ffmpeg -i {path.name} -ar 16000 out.wav)"
        )


class RunSpec(_Spec):
    network: NetworkSpec
    genesis: str = Field(
        min_length=1, description="the first input: text, or an image or audio file path"
    )
    seed: int | None = Field(None, ge=0, lt=2**63)
    stop: StopConditions = Field(default_factory=StopConditions)
    pace: PacePolicy = Field(default_factory=NoPace)

    @model_validator(mode="after")
    def _genesis_fits_first_model(self) -> RunSpec:
        first = self.network.models[0]
        kind = first.info.input_type
        if kind in BLOB_TYPES and not Path(self.genesis).is_file():
            raise ValueError(
                f"genesis: network {self.network.name!r} starts with {first.model}, which takes "
                f"{'an image' if kind == 'image' else 'audio'}; pass the path of "
                f"{'an image' if kind == 'image' else 'an audio'} file, not {self.genesis[:40]!r}"
            )
        if kind == "audio":
            _check_audio_genesis(Path(self.genesis), first.info)
        return self

    def thread_inputs(self, genesis_hash: str | None = None) -> dict[str, Any]:
        """What makes this occurrence unique; an image genesis counts by its content hash."""
        return {"genesis": genesis_hash or self.genesis, "seed": self.seed}

    def thread(self, genesis_hash: str | None = None) -> str:
        return thread_key(self.network.realm, self.thread_inputs(genesis_hash))


def load_network(path: Path, catalog: Catalog) -> NetworkSpec:
    return load_spec(path, NetworkSpec, catalog)
