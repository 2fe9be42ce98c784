"""What one app serves from: its home, its background runs, and what the public may reach.

One per app, on ``app.state.served``, so nothing is module-level and two apps (two homes, in
one test process) never share a run, a cache or a rate limit.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request

from sandloop import api
from sandloop.chats import is_chat
from sandloop.flows.background import Launcher
from sandloop.loops.spec_files import SpecError
from sandloop.scrub import scrub
from sandloop.storage.store import AkashicStore, NotFound
from sandloop.summaries import Started
from sandloop.web.limits import RateLimit
from sandloop.web.streams import StreamSlots, Watchers
from sandloop.work_queue import WorkQueue

VISITOR_RUN: dict[str, Any] = {"stop": {"max_steps": 24}}  # what a visitor's prompt starts
#: Outputs a served search embeds before it searches (runs do not wait for their embeddings):
#: enough to keep up with a few runs between searches, few enough that a request stays short.
#: The next searches make the rest.
SEARCH_CATCH_UP = 256


@dataclass(frozen=True)
class Ceilings:
    """How much one start over HTTP or MCP may ask of this server: a client's run is the
    server's work, so a ``max_steps`` of 10^30 or a network of 5,000 models is refused (422),
    not queued. Set by `Settings` (``SANDLOOP_SERVED_*``)."""

    max_steps: int = 1000
    max_models: int = 32
    max_duration_s: float = 86_400.0

    def check(self, spec: Any) -> None:
        stop = spec.stop
        if stop.max_steps is None or stop.max_steps > self.max_steps:
            raise SpecError(f"stop.max_steps: this server runs at most {self.max_steps} steps")
        self.check_models(len(spec.network.models))
        if stop.max_duration_s is not None and stop.max_duration_s > self.max_duration_s:
            raise SpecError(
                f"stop.max_duration_s: this server runs a run at most {self.max_duration_s:g} s"
            )

    def check_models(self, models: int) -> None:
        """Before the network is checked: 5,000 models are not looked up one by one first."""
        if models > self.max_models:
            raise SpecError(f"network.models: this server runs at most {self.max_models} models")


class Conflict(Exception):
    """The request clashes with what exists: a thread this app already runs (a second start
    would only queue behind it), a snapshot name already taken."""


@dataclass
class Served:
    home: Path | str | None
    networks: dict[str, Path] = field(default_factory=dict)  # what may be started by name
    gallery: bool = True  # the public, read-only gallery pages and their stream
    exports: Path | None = None  # where exports started over HTTP go (default: HOME-exports)
    max_prompt: int = 500  # characters of a visitor's genesis
    public_url: str | None = None  # where visitors reach this server (the QR code's address)
    moderation: str | None = None  # a recipe that allows or declines a visitor's genesis
    submissions: RateLimit = field(default_factory=lambda: RateLimit(3, 60.0))
    visitor_run: dict[str, Any] = field(default_factory=lambda: dict(VISITOR_RUN))
    launcher: Launcher = field(default_factory=Launcher)  # runs started with a token
    # visitors' runs have their own slots: API users cannot starve the wall, nor the reverse
    visitor_launcher: Launcher = field(default_factory=Launcher)
    embedder: Any = None
    image_embedder: Any = None  # loaded on the first image search
    running: dict[str, Future[Any]] = field(default_factory=dict)
    starting: dict[str, dict[str, Any]] = field(default_factory=dict)
    claimed: set[str] = field(default_factory=set)  # threads being begun, not yet running
    lock: threading.Lock = field(default_factory=threading.Lock)
    ceilings: Ceilings = field(default_factory=Ceilings)  # what one client's start may ask
    watchers: Watchers = field(default_factory=Watchers)  # one poller per watched thread
    stream_slots: StreamSlots = field(default_factory=StreamSlots)
    stream_idle_s: float = 300.0  # a stream with nothing to say this long ends
    _store: AkashicStore | None = None
    _queue: WorkQueue | None = None

    def models_root(self) -> Path:
        """The folder under which a request may name a model by path (`web.model_refs`)."""
        return Path(api.settings_for(self.home).models_path)

    def store(self) -> AkashicStore:
        """The home's store, opened once: its handles see other processes' writes."""
        if self._store is None:
            self._store = api.open_store(self.home, readonly=True)
        return self._store

    def queue(self) -> WorkQueue:
        """The home's task queue, one per app: its lock serializes every worker's claims."""
        with self.lock:
            if self._queue is None:
                self._queue = api.work_queue(self.home)
            return self._queue

    def start(
        self,
        thread: str | None,
        begin: Callable[[], Started],
        about: dict[str, Any] | None = None,
    ) -> Started:
        """``begin`` a background run unless this app already runs ``thread``. ``about`` (its
        kind, name, genesis) stands for the run until the flow has recorded it. The thread is
        claimed under the lock and begun outside it, so a slow start holds up no other
        request."""
        with self.lock:
            if thread is not None:
                going = self.running.get(thread)
                if thread in self.claimed or (going is not None and not going.done()):
                    raise Conflict(f"thread {thread[:12]} is already running")
                self.claimed.add(thread)
        try:
            started = begin()
        finally:
            with self.lock:
                self.claimed.discard(thread or "")
        with self.lock:
            # forget what has ended and been recorded (or has failed: see find_run)
            self.running = {t: f for t, f in self.running.items() if not f.done()}
            self.starting = {t: a for t, a in self.starting.items() if t in self.running}
            self.running[started.thread] = started.done
            self.starting[started.thread] = {
                "thread": started.thread,
                "kind": started.kind,
                "name": started.kind,  # every run has a name; `about` gives the real one
                "status": "starting",
                "steps": 0,
                "flow_run_id": started.flow_run_id,
                **(about or {}),
            }
        return started

    def cancel(self, prefix: str) -> dict[str, Any]:
        """Stop a run (`api.cancel_run`). A start this app made is stopped by its own flow run,
        which may still wait for a slot and so be in no record yet."""
        with self.lock:
            live = [
                (thread, self.starting[thread]["flow_run_id"])
                for thread, going in self.running.items()
                if thread.startswith(prefix.lower())
                and not going.done()
                and thread in self.starting
            ]
        if len(live) == 1 and self.starting.get(live[0][0], {}).get("kind") in api.CANCELLABLE:
            thread, flow_run_id = live[0]
            return {**api.cancel_run(thread, self.home, flow_run_id=flow_run_id), "thread": thread}
        return api.cancel_run(prefix, self.home, store=self.store())

    def find_run(self, prefix: str) -> dict[str, Any]:
        """A run by thread or prefix, or one this app has just started that its flow has not
        recorded yet (so a client can follow a run from the moment it is announced)."""
        try:
            run: dict[str, Any] = self.store().find_run(prefix)
        except NotFound:
            about = self.announced(prefix)
            if about is None:  # unknown (NotFound again), or recorded since the first read
                return dict(self.store().find_run(prefix))
            return about
        return run

    def readable_run(self, prefix: str, user: str | None) -> dict[str, Any]:
        """`find_run`, but someone else's chat is no run at all (404) to ``user``, a token's
        user (None: an admin, who reads every run)."""
        run = self.find_run(prefix)
        if user is not None and is_chat(run) and run.get("owner") != user:
            raise NotFound(f"no run has a thread starting with {prefix!r}; see GET /v1/runs")
        return run

    def hidden_threads(self, user: str | None) -> set[str]:
        """The chats ``user`` may not read (none for an admin, None): left out of searches."""
        if user is None:
            return set()
        dialogues = self.store().select("runs", "kind = 'dialogue'")
        return {
            str(run["thread"])
            for run in dialogues.to_dict(orient="records")
            if is_chat(run) and run.get("owner") != user
        }

    def announced(self, thread: str) -> dict[str, Any] | None:
        """What stands for a run this app started and its flow has not recorded: starting,
        or failed with its error once the start has ended without a record (a flow that
        crashed before its first write), rather than starting for ever."""
        with self.lock:
            about, going = self.starting.get(thread), self.running.get(thread)
        if about is None or going is None or not going.done():
            return None if about is None else dict(about)
        if self.store().get_run(thread) is not None:  # recorded after all: ask the store
            return None
        failure = going.exception()
        outcome = failure if failure is not None else going.result()
        said = getattr(outcome, "message", None) or str(outcome)  # an error, or a final state
        return {**about, "status": "failed", "error": scrub(said) or "failed"}


def served(request: Request) -> Served:
    found: Served = request.app.state.served
    return found


ServedBy = Annotated[Served, Depends(served)]
