"""One model call as an `invocations` row, for every loop kind.

The same four-dimension address (realm, thread, step, facet) and the same columns whatever made
the call; the keys are the loop's (network steps hash their input with its type, dialogue and
recipe calls their prompt) and come in with the call.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from sandloop.hashing import hash_value, invocation_key, step_key
from sandloop.loops.protocol import Call, Outcome, Recorded
from sandloop.scrub import scrub

if TYPE_CHECKING:
    import pandas as pd


def dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def with_metadata_objects(frame: pd.DataFrame) -> pd.DataFrame:
    """Steps whose ``metadata`` column holds objects, not the JSON text the store keeps: what
    the HTTP API, its streams and MCP answer."""
    import pandas as pd

    if "metadata" not in frame.columns:
        return frame
    parsed = pd.Series(metadata_objects(frame["metadata"]), index=frame.index, dtype=object)
    return frame.assign(metadata=parsed)


def metadata_objects(column: Iterable[Any]) -> list[dict[str, Any] | None]:
    """A column of recorded metadata (JSON text, as the store keeps it) as objects: what the
    HTTP API and MCP answer, so that a client reads ``usage`` without parsing a string inside
    JSON. Missing or unreadable metadata is None."""
    found: list[dict[str, Any] | None] = []
    for value in column:
        try:
            parsed = orjson.loads(value) if isinstance(value, str) else None
        except orjson.JSONDecodeError:
            parsed = None
        found.append(parsed if isinstance(parsed, dict) else None)
    return found


@dataclass(frozen=True)
class CallAddress:
    kind: str  # network | dialogue | recipe
    realm: str
    thread: str
    step: int
    facet: str
    model: str

    @property
    def step_key(self) -> str:
        return step_key(self.thread, self.step)

    def key(self, input_text: str, params: dict[str, Any]) -> str:
        return invocation_key(self.step_key, self.facet, hash_value(input_text), params)


def invocation_row(
    call: Call, outcome: Outcome, recorded: Recorded, flow_run_id: str | None
) -> dict[str, Any]:
    """The row of a call: its output as the loop keeps it, and its metadata in one mapping (the
    call's own, the model's usage and platform notes, then the loop's)."""
    metadata: dict[str, Any] = dict(call.metadata)
    if outcome.ok:
        if outcome.usage:
            metadata["usage"] = outcome.usage
        metadata.update(outcome.metadata)
        output = recorded.output if recorded.output is not None else outcome.value
    else:
        if "route" in outcome.metadata:  # a route's candidates, each with its error
            metadata["route"] = outcome.metadata["route"]
        output = None
    metadata.update(recorded.metadata)
    started, finished = outcome.started_at, outcome.finished_at
    return {
        "key": call.key,
        "parent_key": call.parent_key,
        "realm": call.realm,
        "thread": call.thread,
        "step": call.step,
        "step_key": call.step_key,
        "facet": call.facet,
        "kind": call.kind,
        "model": call.model,
        "input": call.input_value,
        "input_type": call.input_type,
        "output": output,
        "output_type": call.output_type,
        "params": dumps(call.params),
        "seed": call.seed,
        "status": "ok" if outcome.ok else "failed",
        "error": None if outcome.error is None else scrub(outcome.error),
        "error_type": outcome.error_type,
        "started_at": started,
        "finished_at": finished,
        "latency_ms": (finished - started).total_seconds() * 1000,
        "flow_run_id": flow_run_id,
        "task_run_id": outcome.task_run_id,
        "metadata": dumps(metadata),
    }
