"""The task queue under ``/v1/tasks``: work done outside Prefect, by people or external hosts,
claimed under leases. Every route is a call into `sandloop.work_queue` (one queue per app, so
its lock serializes the claims of every worker that reaches it)."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
import pandas as pd
from fastapi import APIRouter, HTTPException, Query, Response
from fastapi import Path as RoutePath

from sandloop.access_tokens import Grant
from sandloop.web import schemas
from sandloop.web.auth import needs
from sandloop.web.reads import with_urls
from sandloop.web.served import ServedBy
from sandloop.work_queue import Lease, QueueError

router = APIRouter()

TaskId = Annotated[str, RoutePath(pattern="^[0-9a-f]{16}$")]
SubtaskId = Annotated[str, RoutePath(pattern="^[0-9a-f]{32}$")]
Run = Annotated[Grant, needs("run")]


@router.post(
    "/v1/tasks",
    status_code=201,
    response_model=schemas.Task,
    responses={200: {"model": schemas.Task, "description": "the same task, posted before"}},
)
def create_task(
    body: schemas.NewTask, served: ServedBy, grant: Run, response: Response
) -> dict[str, Any]:
    """A task over recorded steps (given as keys, or as threads whose steps it takes). Posting
    the same name, kind and steps again returns the task as it stands (200)."""
    if bool(body.keys) == bool(body.threads):
        raise QueueError("keys, threads: give the steps as one of them")
    queue = served.queue()
    keys = body.keys or queue.keys_of(body.threads)
    row, new = queue.create(
        body.name, body.kind, keys, instructions=body.instructions, by=grant.user
    )
    if not new:
        response.status_code = 200
    return queue.task(str(row["id"]))


@router.get("/v1/tasks", response_model=list[schemas.Task], dependencies=[needs("read")])
def list_tasks(served: ServedBy) -> list[dict[str, Any]]:
    """Tasks, newest first, with their subtasks counted by state."""
    return served.queue().tasks()


@router.get("/v1/tasks/{task}", response_model=schemas.Task, dependencies=[needs("read")])
def show_task(task: TaskId, served: ServedBy) -> dict[str, Any]:
    return served.queue().task(task)


@router.get(
    "/v1/tasks/{task}/subtasks",
    response_model=list[schemas.Subtask],
    dependencies=[needs("read")],
)
def list_subtasks(
    task: TaskId,
    served: ServedBy,
    state: Annotated[str | None, Query(pattern="^(open|leased|done)$")] = None,
    after: Annotated[int, Query(ge=-1, le=2**53, description="a position: the page after it")] = -1,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """A task's subtasks in hand-out order, with their state and results."""
    return [_subtask(row) for row in served.queue().subtasks(task, state, after, limit)]


@router.post(
    "/v1/tasks/{task}/subtasks/take",
    response_model=schemas.Lease,
    responses={204: {"description": "nothing is left to take"}},
    dependencies=[needs("run")],
)
def take(task: TaskId, body: schemas.Take, served: ServedBy) -> Any:
    """Claim up to ``max`` subtasks nobody holds, under one lease that lapses after
    ``lease_s`` unless renewed; 204 when none are left (all done, or all held)."""
    queue = served.queue()
    lease = queue.take(task, body.worker_id, body.max, body.lease_s)
    if lease is None:
        return Response(status_code=204)
    return _lease(served, lease)


@router.post(
    "/v1/tasks/{task}/leases/renew",
    response_model=schemas.Lease,
    dependencies=[needs("run")],
)
def renew(task: TaskId, body: schemas.Renew, served: ServedBy) -> dict[str, Any]:
    """Extend a lease over what it still holds; 409 once it holds nothing."""
    return _lease(served, served.queue().renew(task, body.lease_token, body.lease_s))


@router.api_route(
    "/v1/tasks/{task}/subtasks/take",
    methods=["GET", "PUT", "DELETE", "PATCH"],
    include_in_schema=False,
    dependencies=[needs("read")],
)
def refused_take(task: TaskId) -> None:
    """``take`` is a word, not a subtask id: only POST takes, and anything else is 405 here
    rather than the id route's 422 ("not 32 hex digits"). `web.methods` leaves routes named
    ``refused…`` out of what a path allows."""
    raise HTTPException(405, "only POST takes subtasks", {"Allow": "OPTIONS, POST"})


@router.put(
    "/v1/tasks/{task}/subtasks/{subtask}",
    response_model=schemas.Subtask,
    dependencies=[needs("run")],
)
def complete(
    task: TaskId, subtask: SubtaskId, body: schemas.Result, served: ServedBy
) -> dict[str, Any]:
    """Set a subtask's result under the lease that holds it (409 for a stale lease)."""
    return _subtask(served.queue().complete(task, subtask, body.lease_token, body.result))


def _lease(served: ServedBy, lease: Lease) -> dict[str, Any]:
    items = pd.DataFrame(served.queue().work_items(lease.subtasks))
    items = with_urls(items, "/v1/blobs/")
    return {
        "lease_token": lease.token,
        "expires_at": lease.expires_at,
        "subtasks": items.astype(object).where(items.notna(), None).to_dict(orient="records"),
    }


def _subtask(row: dict[str, Any]) -> dict[str, Any]:
    result = row.get("result")
    return {
        **row,
        "id": row["key"],
        "result": orjson.loads(result) if isinstance(result, str) else None,
    }
