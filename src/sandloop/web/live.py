"""A thread's steps as they are recorded, as server-sent events, from a cursor.

Each step is an ``event: step`` whose ``id`` is its step number, so a browser's EventSource
resumes by itself (it sends ``Last-Event-ID``) and a client that reconnects with ``?after=``
misses nothing. ``event: run`` says the run's status whenever it changes. The store is polled
(the write-ahead log included, so a step shows before it is flushed); the read is pushed down
to the steps past the cursor.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
import pandas as pd
from fastapi import APIRouter, Depends, Header, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.sse import EventSourceResponse, ServerSentEvent

from sandloop.storage.store import AkashicStore
from sandloop.web.auth import needs
from sandloop.web.reads import STEP_FIELDS, Thread, with_urls
from sandloop.web.served import Served, ServedBy

router = APIRouter()

POLL_S = 0.2  # a step shows within this (plus a read) of being recorded
RUN_EVERY = 5  # polls between looks at the run's status
RUN_FIELDS = ("thread", "name", "kind", "status", "steps", "stop_reason")
STEP_NUMBER = re.compile(r"-?[0-9]{1,20}")


def known_thread(thread: Thread, served: ServedBy) -> str:
    """The full thread a prefix names, resolved before the stream starts, so an unknown one is
    a 404 and not a broken stream."""
    return str(served.find_run(thread)["thread"])


KnownThread = Annotated[str, Depends(known_thread)]
MAX_STEP = 2**53  # past any run's steps, and inside the store's int64 filters
After = Annotated[int, Query(ge=-1, le=MAX_STEP, description="the last step already seen")]
LastEventId = Annotated[str | None, Header(description="sent by EventSource on reconnecting")]


@router.get(
    "/v1/runs/{thread}/events", response_class=EventSourceResponse, dependencies=[needs("read")]
)
async def run_events(
    thread: KnownThread,
    served: ServedBy,
    after: After = -1,
    last_event_id: LastEventId = None,
) -> AsyncIterator[ServerSentEvent]:
    """The run's steps past ``after`` (or ``Last-Event-ID``), then each new one as it is
    recorded, until the client leaves."""
    async for event in step_events(served, thread, resume_at(after, last_event_id), "/v1/blobs/"):
        yield event


def resume_at(after: int, last_event_id: str | None) -> int:
    """The header wins: it is what the browser saw last, whatever the page first asked. A
    header that is not a step number (``²`` is a digit to Python, not to ``int``; 2^64 is
    past the store's integers) is ignored, as a browser would never send it."""
    if last_event_id is not None and STEP_NUMBER.fullmatch(last_event_id.strip()):
        return max(-1, min(int(last_event_id), MAX_STEP))
    return after


async def step_events(
    served: Served, thread: str, after: int, blob_prefix: str
) -> AsyncIterator[ServerSentEvent]:
    store = served.store()
    last, polls, status = after, 0, None
    recorded: dict[str, Any] | None = None
    while True:
        if recorded is None or polls % RUN_EVERY == 0:
            recorded = await run_in_threadpool(store.get_run, thread)
            # announced, not yet recorded by its flow
            run = recorded if recorded is not None else served.announced(thread) or {}
            now = {k: _plain(run.get(k)) for k in RUN_FIELDS}
            if now != status:
                status = now
                yield ServerSentEvent(event="run", raw_data=orjson.dumps(now).decode())
        polls += 1
        if recorded is None:
            await asyncio.sleep(POLL_S)
            continue
        frame = await run_in_threadpool(_steps_after, store, recorded, last)
        if frame.empty:
            await asyncio.sleep(POLL_S)
            continue
        frame = with_urls(frame.sort_values(["step", "key"]), blob_prefix)
        fields = [f for f in STEP_FIELDS if f in frame.columns]
        text = frame[fields].to_json(orient="records", date_format="iso", date_unit="us")
        for row in orjson.loads(str(text)):
            yield ServerSentEvent(
                event="step", id=str(row["step"]), raw_data=orjson.dumps(row).decode()
            )
        last = int(frame["step"].max())


def _steps_after(store: AkashicStore, run: dict[str, Any], last: int) -> pd.DataFrame:
    """The steps past ``last``, checked against the run as last read (every RUN_EVERY polls):
    a run read earlier claims no more steps than it has now, so the check stays sound."""
    steps = store.steps(str(run["thread"]), last)
    store.check_recorded(run, steps, last)
    return steps


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):  # a numpy scalar
        value = value.item()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)
