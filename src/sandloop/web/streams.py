"""Live step streams, shared: one poller per watched thread, however many clients watch it,
and a bound on how many streams are open at once.

A stream that polled the store for itself cost the server one read every 0.2 s: 200 public
gallery streams held by a stranger kept 1.6 of 2 cores busy and slowed every other request
to seconds. Here a thread's `Watcher` reads its new steps and its status once per poll and
hands them to each subscriber's queue; a subscriber only catches up from its own cursor once,
then follows the queue. `StreamSlots` caps open streams per client address and in total (a
stream past either is refused with 429), and a stream with nothing to say for ``idle_s``
ends (a browser's EventSource reconnects with ``Last-Event-ID`` and misses nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pandas as pd
from fastapi.concurrency import run_in_threadpool
from fastapi.sse import ServerSentEvent

from sandloop.errors import SandloopError
from sandloop.records import with_metadata_objects
from sandloop.storage.store import AkashicStore
from sandloop.web.schemas import STEP_FIELDS

log = logging.getLogger("sandloop.web")

POLL_S = 0.2  # a step shows within this (plus a read) of being recorded
RUN_EVERY = 5  # polls between looks at the run's status
RUN_FIELDS = ("thread", "name", "kind", "status", "steps", "stop_reason")
QUEUE_ITEMS = 256  # what a slow subscriber may fall behind by before its stream ends


class TooManyStreams(SandloopError):
    """A client (or the server as a whole) holds as many open streams as it may."""

    def __init__(self, message: str, retry_after_s: int = 5) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass
class StreamSlots:
    """Open streams counted per client address and in total."""

    total: int = 1000
    per_client: int = 20
    open: Counter[str] = field(default_factory=Counter)

    def take(self, client: str) -> None:
        if sum(self.open.values()) >= self.total:
            raise TooManyStreams(f"this server has {self.total} streams open; try again soon")
        if self.open[client] >= self.per_client:
            raise TooManyStreams(
                f"at most {self.per_client} open streams per client; close one first"
            )
        self.open[client] += 1

    def give_back(self, client: str) -> None:
        self.open[client] -= 1
        if self.open[client] <= 0:
            del self.open[client]


@dataclass(eq=False)
class _Subscriber:
    queue: asyncio.Queue[tuple[str, Any]] = field(
        default_factory=lambda: asyncio.Queue(QUEUE_ITEMS)
    )
    overflowed: bool = False


class Watcher:
    """Polls one thread while anyone watches it, and gives each subscriber what is new:
    ``("run", status)`` when the run's status changes, ``("steps", rows)`` for new steps."""

    def __init__(self, served: Any, thread: str) -> None:
        self.served, self.thread = served, thread
        self.subscribers: set[_Subscriber] = set()
        self.status: dict[str, Any] | None = None
        self.task: asyncio.Task[None] | None = None

    def publish(self, item: tuple[str, Any]) -> None:
        for subscriber in list(self.subscribers):
            try:
                subscriber.queue.put_nowait(item)
            except asyncio.QueueFull:  # too slow: its stream ends, and it resumes from a cursor
                subscriber.overflowed = True
                self.subscribers.discard(subscriber)

    async def run(self) -> None:
        try:
            await self._poll()
        except Exception as exc:  # a read that failed: every stream of the thread ends
            from sandloop.scrub import scrub

            log.error(
                "stream of %s ended: %s: %s", self.thread[:12], type(exc).__name__, scrub(str(exc))
            )
            self.publish(("end", None))

    async def _poll(self) -> None:
        store: AkashicStore = self.served.store()
        last, polls = -1, 0
        recorded: dict[str, Any] | None = None
        while self.subscribers:
            if recorded is None or polls % RUN_EVERY == 0:
                recorded = await run_in_threadpool(store.get_run, self.thread)
                now = run_status(self.served, self.thread, recorded)
                if now != self.status:
                    self.status = now
                    self.publish(("run", now))
            polls += 1
            if recorded is not None:
                frame = await run_in_threadpool(steps_after, store, recorded, last)
                if not frame.empty:
                    self.publish(("steps", step_rows(frame)))
                    last = int(frame["step"].max())
            await asyncio.sleep(POLL_S)


class Watchers:
    """The app's watchers, one per thread being watched; a watcher stops with its last
    subscriber."""

    def __init__(self) -> None:
        self.watching: dict[str, Watcher] = {}

    @contextlib.asynccontextmanager
    async def subscription(self, served: Any, thread: str) -> AsyncIterator[_Subscriber]:
        watcher = self.watching.get(thread)
        if watcher is None or watcher.task is None or watcher.task.done():
            watcher = self.watching[thread] = Watcher(served, thread)
        subscriber = _Subscriber()
        watcher.subscribers.add(subscriber)
        if watcher.task is None:
            watcher.task = asyncio.ensure_future(watcher.run())
        try:
            yield subscriber
        finally:
            watcher.subscribers.discard(subscriber)
            if not watcher.subscribers and self.watching.get(thread) is watcher:
                del self.watching[thread]
                watcher.task.cancel()


async def step_events(
    served: Any, thread: str, after: int, blob_prefix: str, idle_s: float, public: bool = False
) -> AsyncIterator[ServerSentEvent]:
    """``event: run`` with the run's status (then whenever it changes) and ``event: step`` for
    each step past ``after``, until the client leaves or nothing happens for ``idle_s``. A
    ``public`` stream (the gallery's) shows no failed step's error text: it may name a path,
    a provider's message or a model's internals."""
    async with served.watchers.subscription(served, thread) as subscriber:
        store: AkashicStore = served.store()
        recorded = await run_in_threadpool(store.get_run, thread)
        status = run_status(served, thread, recorded)
        yield _run_event(status)
        last = after
        if recorded is not None:  # catch up from the cursor once; the watcher gives the rest
            frame = await run_in_threadpool(steps_after, store, recorded, last)
            if not frame.empty:
                rows = step_rows(frame)
                for event in _step_events(rows, last, blob_prefix, public):
                    yield event
                last = max(last, int(frame["step"].max()))
        loop = asyncio.get_running_loop()
        quiet_until = loop.time() + idle_s
        while not (subscriber.overflowed and subscriber.queue.empty()):
            try:
                kind, payload = await asyncio.wait_for(
                    subscriber.queue.get(), max(0.0, quiet_until - loop.time())
                )
            except TimeoutError:
                return  # idle: the client reconnects from its last step if it still cares
            if kind == "end":
                return
            if kind == "run":
                if payload != status:
                    status = payload
                    yield _run_event(status)
                    quiet_until = loop.time() + idle_s
                continue
            fresh = [row for row in payload if row["step"] > last]
            if fresh:
                for event in _step_events(fresh, last, blob_prefix, public):
                    yield event
                last = max(row["step"] for row in fresh)
                quiet_until = loop.time() + idle_s


def run_status(served: Any, thread: str, recorded: dict[str, Any] | None) -> dict[str, Any]:
    """The run's status fields, from its record or (not yet recorded) what the app announced."""
    run = recorded if recorded is not None else served.announced(thread) or {}
    return {k: _plain(run.get(k)) for k in RUN_FIELDS}


def steps_after(store: AkashicStore, run: dict[str, Any], last: int) -> pd.DataFrame:
    """The steps past ``last``, checked against the run as last read (every RUN_EVERY polls):
    a run read earlier claims no more steps than it has now, so the check stays sound."""
    steps = store.steps(str(run["thread"]), last)
    store.check_recorded(run, steps, last)
    return steps


def step_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Steps in order as JSON-ready dicts (the API's step fields, less the blob URL, which
    depends on the route that streams them)."""
    frame = frame.sort_values(["step", "key"])
    fields = [f for f in STEP_FIELDS if f in frame.columns]
    chosen = with_metadata_objects(frame[fields])
    text = chosen.to_json(orient="records", date_format="iso", date_unit="us")
    rows: list[dict[str, Any]] = orjson.loads(str(text))
    return rows


def _step_events(
    rows: list[dict[str, Any]], last: int, prefix: str, public: bool = False
) -> list[ServerSentEvent]:
    events = []
    for row in rows:
        if row["step"] <= last:
            continue
        shown = dict(row)
        if public:
            shown["error"] = None
        is_blob = shown.get("output_type") != "text"
        shown["output_url"] = f"{prefix}{shown['output']}" if is_blob else None
        events.append(
            ServerSentEvent(
                event="step", id=str(row["step"]), raw_data=orjson.dumps(shown).decode()
            )
        )
    return events


def _run_event(status: dict[str, Any]) -> ServerSentEvent:
    return ServerSentEvent(event="run", raw_data=orjson.dumps(status).decode())


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):  # a numpy scalar
        value = value.item()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)
