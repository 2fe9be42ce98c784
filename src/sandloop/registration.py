"""Recording that a run exists: its row in `runs`, typed, for every loop kind.

The flows register what deployments hand them, and the API what users start, through these same
functions; neither imports the other.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sandloop.hashing import hash_bytes
from sandloop.loops.dialogue.spec import DialogueSpec
from sandloop.loops.network.spec import RunSpec, load_network
from sandloop.loops.spec_check import validated
from sandloop.loops.spec_files import SpecError
from sandloop.loops.status import RunStatus
from sandloop.models.io_types import BLOB_TYPES
from sandloop.models.registry import Catalog
from sandloop.storage.store import AkashicStore


@dataclass(frozen=True)
class RunRecord:
    """A row of the `runs` table (storage.schema.RUNS), field for field."""

    thread: str
    realm: str
    kind: str  # network | dialogue | recipe
    name: str
    spec: str  # the spec as JSON: what a resume reads back
    genesis: str | None
    seed: int | None
    status: str = RunStatus.REGISTERED.value
    stop_reason: str | None = None
    loop_length: int | None = None
    steps: int = 0
    error: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    flow_run_id: str | None = None
    session: str | None = None
    phase: str | None = None
    next_due_at: datetime | None = None
    continuation: str | None = None
    owner: str | None = None  # the token's user that made it over HTTP; None: made locally

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> RunRecord:
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in row.items() if k in names}
        for number in ("seed", "loop_length"):
            if values.get(number) is not None:
                values[number] = int(values[number])
        values["steps"] = int(values.get("steps") or 0)
        return cls(**values)

    def as_row(self) -> dict[str, Any]:
        return asdict(self)

    def but(self, **changes: Any) -> RunRecord:
        return replace(self, **changes)


def get_record(store: AkashicStore, thread: str) -> RunRecord | None:
    row = store.get_run(thread)
    return None if row is None else RunRecord.from_row(row)


def put_record(store: AkashicStore, record: RunRecord) -> None:
    store.put_run(record.as_row())


def load_run_spec(network_path: Path | str, catalog: Catalog, **fields: Any) -> RunSpec:
    """A RunSpec from a network file plus run fields (genesis, seed, stop, pace)."""
    network = load_network(Path(network_path), catalog)
    return validated({"network": network, **fields}, RunSpec, "run", catalog)


def run_spec_from(fields: dict[str, Any], catalog: Catalog) -> RunSpec:
    """A RunSpec from a mapping, as deployments pass it: ``network`` is a file path (relative to
    the working directory) or the network itself; the other keys are RunSpec fields."""
    fields = dict(fields)
    network = fields.pop("network", None)
    if network is None:
        raise SpecError("run: network: missing; give a network file path or its models")
    if isinstance(network, str | Path):
        return load_run_spec(network, catalog, **fields)
    return validated({"network": network, **fields}, RunSpec, "run", catalog)


def thread_of(spec: RunSpec) -> str:
    """The thread a run spec names, computed without writing anything. An image or audio genesis
    counts by its content hash, so renaming the file does not make a new thread."""
    if spec.network.input_type in BLOB_TYPES:
        return spec.thread(hash_bytes(Path(spec.genesis).read_bytes()))
    return spec.thread()


def register_run(store: AkashicStore, spec: RunSpec, session: str | None = None) -> str:
    """Record the run (or refresh its stop conditions and pace) and return its thread id.

    Call it only while holding the thread's writer lock: it rewrites the spec a running writer
    reads. An image or audio genesis is stored as a blob first.
    """
    genesis_value = spec.genesis
    as_blob = spec.network.input_type in BLOB_TYPES
    if as_blob:
        genesis_value = store.blobs.put(Path(spec.genesis).read_bytes())
    thread = spec.thread(genesis_value if as_blob else None)
    record = RunRecord(
        thread=thread,
        realm=spec.network.realm,
        kind="network",
        name=spec.network.name,
        spec=spec.model_dump_json(),
        genesis=genesis_value,
        seed=spec.seed,
        created_at=datetime.now(UTC),
        session=session,
    )
    existing = get_record(store, thread)
    if existing is not None:  # keep where it stands; take the new stop conditions and pace
        record = existing.but(
            realm=record.realm,
            name=record.name,
            spec=record.spec,
            genesis=record.genesis,
            seed=record.seed,
            session=session or existing.session,
            next_due_at=None,
            continuation=None,
        )
    put_record(store, record)
    return thread


def register_dialogue(
    store: AkashicStore,
    spec: DialogueSpec,
    seed: int | None,
    session: str | None = None,
    owner: str | None = None,
) -> str:
    """Record a dialogue (once) and return its thread id."""
    thread = spec.thread(seed)
    if store.get_run(thread) is None:
        record = RunRecord(
            thread=thread,
            realm=spec.realm,
            kind="dialogue",
            name=spec.name,
            spec=spec.model_dump_json(),
            genesis=spec.question,
            seed=seed,
            created_at=datetime.now(UTC),
            session=session,
            owner=owner,
        )
        put_record(store, record)
    return thread
