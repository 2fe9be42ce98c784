"""A sweep's spec: networks × genesis prompts × seeds, advanced together under one stop rule.

Every member is an ordinary network run (`RunSpec`): the same thread, keys and outputs as the
same network, genesis and seed run alone by `sandloop run`. The members are expanded lazily, in a
fixed order, so a sweep of 100k threads never holds them all.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, field_validator, model_validator

from sandloop.hashing import realm_key
from sandloop.loops.network.spec import NetworkSpec, RunSpec, StopConditions, load_network
from sandloop.loops.spec_check import validated
from sandloop.loops.spec_files import SPEC_CONFIG, SpecError, read_mapping, read_text_file
from sandloop.models.registry import Catalog

#: The largest genesis file read (a prompt list, not a corpus).
MAX_GENESIS_FILE_BYTES = 64 * 1024 * 1024


class SweepRedefined(SpecError):
    """A sweep's name already stands for other members."""


class SeedCount(BaseModel):
    model_config = SPEC_CONFIG
    count: int = Field(ge=1, le=1_000_000, description="seeds 0, 1, … count-1")


class SweepSpec(BaseModel):
    model_config = SPEC_CONFIG

    name: str = Field(min_length=1, max_length=120, pattern=r"^[A-Za-z0-9][\w.\-]*$")
    description: str = ""
    networks: list[NetworkSpec] = Field(min_length=1)
    genesis: list[str] = Field(default_factory=list)
    seeds: list[int] | SeedCount = Field(default_factory=lambda: [0])
    stop: StopConditions = Field(default_factory=StopConditions)
    max_concurrent: int = Field(256, ge=1, le=100_000, description="threads advanced together")

    @field_validator("genesis")
    @classmethod
    def _no_empty_prompt(cls, genesis: list[str]) -> list[str]:
        for i, text in enumerate(genesis):
            if not text.strip():
                raise ValueError(f"genesis[{i}] is empty")
        return genesis

    @field_validator("seeds")
    @classmethod
    def _seeds_in_range(cls, seeds: list[int] | SeedCount) -> list[int] | SeedCount:
        if isinstance(seeds, list):
            if not seeds:
                raise ValueError("give at least one seed, or seeds: {count: N}")
            if any(s < 0 or s >= 2**63 for s in seeds):
                raise ValueError("seeds are whole numbers from 0 to 2**63-1")
        return seeds

    @model_validator(mode="after")
    def _has_genesis(self) -> SweepSpec:
        if not self.genesis:
            raise ValueError("genesis: give at least one prompt (or genesis_file: a file of them)")
        for network in self.networks:
            if network.input_type != "text":
                raise ValueError(
                    f"networks: {network.name!r} starts with an image model; a sweep's genesis "
                    "is text (image sweeps come later)"
                )
        return self

    @property
    def seed_list(self) -> list[int]:
        if isinstance(self.seeds, SeedCount):
            return list(range(self.seeds.count))
        return list(self.seeds)

    @property
    def realm(self) -> str:
        """What makes two sweeps the same experiment: the stop rule and the window may change."""
        return realm_key("sweep", self.model_dump(include={"networks", "genesis", "seeds"}))

    def size(self) -> int:
        """Members as written, duplicates included."""
        return len(self.networks) * len(self.genesis) * len(self.seed_list)

    def members(self) -> Iterator[Member]:
        """Each distinct (network, genesis, seed) once, network-major, in the written order."""
        seen: set[str] = set()
        for n, network in enumerate(self.networks):
            for genesis in self.genesis:
                for seed in self.seed_list:
                    spec = RunSpec.model_construct(
                        network=network, genesis=genesis, seed=seed, stop=self.stop
                    )
                    thread = spec.thread()
                    if thread in seen:
                        continue
                    seen.add(thread)
                    yield Member(n, thread, spec)

    def duplicates(self) -> int:
        return self.size() - sum(1 for _ in self.members())


@dataclass(frozen=True)
class Member:
    network_index: int
    thread: str
    spec: RunSpec


def read_genesis_file(path: Path, column: str | None) -> list[str]:
    """Prompts from a file: one per line (.txt), a column of a .csv, or a field of each .jsonl
    record (default `genesis`, else `prompt` or `text`)."""
    text = read_text_file(path, MAX_GENESIS_FILE_BYTES)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        reader = csv.DictReader(text.splitlines())
        fields = reader.fieldnames or []
        name = column or next((f for f in ("genesis", "prompt", "text") if f in fields), None)
        if name is None or name not in fields:
            wanted = column or "genesis, prompt or text"
            raise SpecError(f"{path}: no column {wanted!r} (columns: {', '.join(fields)})")
        return [row[name] for row in reader if (row.get(name) or "").strip()]
    if suffix == ".jsonl":
        prompts: list[str] = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                raise SpecError(f"{path}: line {number} is not JSON") from None
            if not isinstance(record, dict):
                raise SpecError(f"{path}: line {number} is not a JSON object")
            names = [column] if column else ["genesis", "prompt", "text"]
            name = next((n for n in names if n in record), None)
            if name is None or not isinstance(record[name], str):
                raise SpecError(f"{path}: line {number} has no text field {' or '.join(names)}")
            prompts.append(record[name])
        return prompts
    if column is not None:
        raise SpecError(f"{path}: genesis_column applies to .csv and .jsonl files")
    return [line for line in text.splitlines() if line.strip()]


def load_sweep(path: Path, catalog: Catalog) -> SweepSpec:
    """A sweep file, its network files (relative to the sweep file, else to the working folder)
    and genesis file read and checked; errors are one line naming the file and the field."""
    data = read_mapping(path)
    data.setdefault("name", path.stem)
    networks = data.get("networks")
    if isinstance(networks, list):
        data["networks"] = [_network(path, entry, i, catalog) for i, entry in enumerate(networks)]
    genesis_file = data.pop("genesis_file", None)
    column = data.pop("genesis_column", None)
    if genesis_file is not None:
        if "genesis" in data:
            raise SpecError(f"{path}: give genesis or genesis_file, not both")
        if not isinstance(genesis_file, str) or (
            column is not None and not isinstance(column, str)
        ):
            raise SpecError(f"{path}: genesis_file and genesis_column are text")
        data["genesis"] = read_genesis_file(_beside(path, genesis_file), column)
        if not data["genesis"]:
            raise SpecError(f"{path}: genesis_file {genesis_file} holds no prompts")
    return validated(data, SweepSpec, str(path), catalog)


def _beside(spec_path: Path, name: str) -> Path:
    relative = spec_path.parent / name
    return relative if relative.exists() or Path(name).is_absolute() else Path(name)


def _network(spec_path: Path, entry: Any, index: int, catalog: Catalog) -> Any:
    """A network named by its file (loaded and checked now), or written inline."""
    if isinstance(entry, str):
        found = _beside(spec_path, entry)
        if not found.is_file():
            raise SpecError(f"{spec_path}: networks[{index}]: no network file {entry!r}")
        return load_network(found, catalog).model_dump()
    return entry
