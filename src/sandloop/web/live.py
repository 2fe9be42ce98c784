"""A thread's steps as they are recorded, as server-sent events, from a cursor.

Each step is an ``event: step`` whose ``id`` is its step number, so a browser's EventSource
resumes by itself (it sends ``Last-Event-ID``) and a client that reconnects with ``?after=``
misses nothing. ``event: run`` says the run's status whenever it changes. The polling is shared
by every stream of a thread, and open streams are bounded (`web.streams`).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.sse import EventSourceResponse, ServerSentEvent

from sandloop.web.auth import Reader, needs, reach
from sandloop.web.reads import Thread
from sandloop.web.served import ServedBy
from sandloop.web.streams import step_events

router = APIRouter()

STEP_NUMBER = re.compile(r"-?[0-9]{1,20}")
MAX_STEP = 2**53  # past any run's steps, and inside the store's int64 filters
TOO_MANY: dict[int | str, dict[str, Any]] = {
    429: {"description": "too many open streams (per client, or in all)"}
}


def known_thread(thread: Thread, served: ServedBy, grant: Reader) -> str:
    """The full thread a prefix names, resolved before the stream starts, so an unknown one
    (or someone else's chat) is a 404 and not a broken stream."""
    return str(served.readable_run(thread, reach(grant))["thread"])


async def stream_slot(request: Request, served: ServedBy) -> AsyncIterator[None]:
    """One of the client's open streams, held until the stream ends (429 past the cap)."""
    client = request.client.host if request.client else "?"
    served.stream_slots.take(client)
    try:
        yield
    finally:
        served.stream_slots.give_back(client)


KnownThread = Annotated[str, Depends(known_thread)]
StreamSlot = Annotated[None, Depends(stream_slot, scope="request")]  # held while it streams
After = Annotated[int, Query(ge=-1, le=MAX_STEP, description="the last step already seen")]
LastEventId = Annotated[str | None, Header(description="sent by EventSource on reconnecting")]


@router.get(
    "/v1/runs/{thread}/events",
    response_class=EventSourceResponse,
    responses=TOO_MANY,
    dependencies=[needs("read")],
)
async def run_events(
    thread: KnownThread,
    served: ServedBy,
    _slot: StreamSlot,
    after: After = -1,
    last_event_id: LastEventId = None,
) -> AsyncIterator[ServerSentEvent]:
    """The run's steps past ``after`` (or ``Last-Event-ID``), then each new one as it is
    recorded, until the client leaves (or nothing happens for the server's idle time)."""
    cursor = resume_at(after, last_event_id)
    async for event in step_events(served, thread, cursor, "/v1/blobs/", served.stream_idle_s):
        yield event


def resume_at(after: int, last_event_id: str | None) -> int:
    """The header wins: it is what the browser saw last, whatever the page first asked. A
    header that is not a step number (``²`` is a digit to Python, not to ``int``; 2^64 is
    past the store's integers) is ignored, as a browser would never send it."""
    if last_event_id is not None and STEP_NUMBER.fullmatch(last_event_id.strip()):
        return max(-1, min(int(last_event_id), MAX_STEP))
    return after
