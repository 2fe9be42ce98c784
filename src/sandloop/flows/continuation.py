"""A paced run's long wait, handed to a flow run of the same deployment scheduled at the due time.

A PANIC-style run waits ten minutes between steps once it is an hour old; a worker asleep for
that long is wasted and dies with its machine. Instead the flow run records where the thread
stands, schedules its continuation at the due time, and ends. The continuation carries the
thread key (and the store's location) only: the rest is read back from the store, exactly as
a resume after a crash.

Duplicates are resolved by an idempotency key per (thread, next step): whoever reaches the same
point first creates the continuation, and everyone else gets that same flow run back. A flow run
that gets *itself* back is the continuation, started early (workers fetch scheduled runs ahead
of time), and simply waits out the rest in-process.

A duplicate that starts so close to the due time that its own wait would not be handed off must
not run the step either: the thread's record names the continuation it is waiting for, and
while that flow run can still run, everyone else leaves the thread to it (``live_continuation``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prefect.context import FlowRunContext

# Prefect states after which a flow run will not run again by itself.
_FINAL = frozenset({"COMPLETED", "FAILED", "CANCELLED", "CRASHED"})

# A run that was cancelled in the UI cannot be created again under its key; the next attempt
# derives a new key from it, so every duplicate still lands on the same successor.
_MAX_KEYS = 8


@dataclass(frozen=True)
class Continuation:
    flow_run_id: str
    flow_run_name: str
    scheduled_at: datetime


def current_deployment_id() -> str | None:
    """The deployment this flow run belongs to; None for a plain `sandloop run`."""
    context = FlowRunContext.get()
    if context is None or context.flow_run is None or context.flow_run.deployment_id is None:
        return None
    return str(context.flow_run.deployment_id)


def _own_flow_run_id() -> str | None:
    context = FlowRunContext.get()
    return str(context.flow_run.id) if context is not None and context.flow_run else None


def schedule_continuation(
    deployment_id: str,
    *,
    thread: str,
    step: int,
    due: datetime,
    parameters: dict[str, Any],
    name: str,
    tags: list[str],
) -> Continuation | None:
    """Schedule (or find) the flow run that takes the thread on at ``step``; None when that flow
    run is this one."""
    from prefect.deployments import run_deployment

    key = f"sandloop:{thread}:{step}"
    for _ in range(_MAX_KEYS):
        flow_run: Any = run_deployment(
            deployment_id,
            parameters=parameters,
            scheduled_time=due,
            flow_run_name=name,
            tags=tags,
            idempotency_key=key,
            timeout=0,
            as_subflow=False,
        )
        if str(flow_run.id) == _own_flow_run_id():
            return None
        state_type = flow_run.state.type.value if flow_run.state is not None else ""
        if state_type not in _FINAL:
            scheduled = flow_run.expected_start_time or due
            return Continuation(str(flow_run.id), str(flow_run.name), scheduled)
        key = f"sandloop:{thread}:{step}:after:{flow_run.id}"
    raise RuntimeError(
        f"could not schedule a continuation of thread {thread[:12]} at step {step}: "
        f"{_MAX_KEYS} earlier continuations ended without running it"
    )


def live_continuation(run: dict[str, Any]) -> Continuation | None:
    """The continuation a waiting thread was handed to, if it is another flow run than this one
    and can still run: then this flow run is a duplicate and must leave the thread alone."""
    flow_run_id = run.get("continuation")
    if run.get("status") != "waiting" or not flow_run_id or flow_run_id == _own_flow_run_id():
        return None
    from uuid import UUID

    from prefect import get_client

    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(UUID(str(flow_run_id)))
    state_type = flow_run.state.type.value if flow_run.state is not None else ""
    if state_type in _FINAL:
        return None  # cancelled, crashed or failed without the step: take the thread on
    scheduled: datetime = (
        flow_run.expected_start_time or run.get("next_due_at") or datetime.now(UTC)
    )
    return Continuation(str(flow_run.id), str(flow_run.name), scheduled)
