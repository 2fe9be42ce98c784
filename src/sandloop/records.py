"""One model call as an `invocations` row, for any loop kind.

Network runs build theirs from a step plan (``engine.invocation_row``); dialogues and recipes
use this: the same four-dimension address (realm, thread, step, facet), the same columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from sandloop.keys import hash_value, invocation_key, step_key
from sandloop.scrub import scrub


def dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


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


def invocation_columns(
    *,
    key: str,
    parent_key: str | None,
    realm: str,
    thread: str,
    step: int,
    step_key: str,
    facet: str,
    kind: str,
    model: str,
    input_value: str | None,
    input_type: str,
    output: str | None,
    output_type: str,
    params: dict[str, Any],
    seed: int | None,
    status: str,
    started_at: datetime,
    finished_at: datetime,
    error: str | None,
    error_type: str | None,
    flow_run_id: str | None,
    task_run_id: str | None,
    metadata: dict[str, Any] | None,
) -> dict[str, Any]:
    """The `invocations` columns, in one place for every loop kind (keys are the caller's:
    network steps hash their input with its type, dialogue and recipe calls their prompt)."""
    return {
        "key": key,
        "parent_key": parent_key,
        "realm": realm,
        "thread": thread,
        "step": step,
        "step_key": step_key,
        "facet": facet,
        "kind": kind,
        "model": model,
        "input": input_value,
        "input_type": input_type,
        "output": output,
        "output_type": output_type,
        "params": dumps(params),
        "seed": seed,
        "status": status,
        "error": None if error is None else scrub(error),
        "error_type": error_type,
        "started_at": started_at,
        "finished_at": finished_at,
        "latency_ms": (finished_at - started_at).total_seconds() * 1000,
        "flow_run_id": flow_run_id,
        "task_run_id": task_run_id,
        "metadata": dumps(metadata or {}),
    }


def call_row(
    address: CallAddress,
    *,
    input_text: str,
    params: dict[str, Any],
    seed: int | None,
    status: str,
    output: str | None,
    started_at: datetime,
    finished_at: datetime,
    parent_key: str | None = None,
    error: str | None = None,
    error_type: str | None = None,
    flow_run_id: str | None = None,
    task_run_id: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A text→text call of a dialogue or recipe."""
    return invocation_columns(
        key=address.key(input_text, params),
        parent_key=parent_key,
        realm=address.realm,
        thread=address.thread,
        step=address.step,
        step_key=address.step_key,
        facet=address.facet,
        kind=address.kind,
        model=address.model,
        input_value=input_text,
        input_type="text",
        output=output,
        output_type="text",
        params=params,
        seed=seed,
        status=status,
        started_at=started_at,
        finished_at=finished_at,
        error=error,
        error_type=error_type,
        flow_run_id=flow_run_id,
        task_run_id=task_run_id,
        metadata=metadata,
    )
