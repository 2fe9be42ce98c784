"""Which HTTP status each of sandloop's errors is, in one table for the routes' handlers and
the chat stream's error frames."""

from __future__ import annotations

import logging

from sandloop.chats import ReplyFailed
from sandloop.errors import SandloopError
from sandloop.loops.status import NotCancellable
from sandloop.scrub import scrub
from sandloop.storage.store import AmbiguousPrefix, NotFound
from sandloop.storage.wal import ThreadLocked
from sandloop.web.served import Conflict
from sandloop.web.streams import TooManyStreams
from sandloop.work_queue import StaleLease

log = logging.getLogger("sandloop.web")

STATUSES: tuple[tuple[type[Exception], int], ...] = (
    (NotFound, 404),
    (AmbiguousPrefix, 409),
    (ThreadLocked, 409),
    (Conflict, 409),
    (StaleLease, 409),
    (NotCancellable, 409),
    (ReplyFailed, 502),
    (TooManyStreams, 429),
    (SandloopError, 422),  # after its subclasses above
)

INTERNAL = "internal error; see the server's log"


def problem(exc: Exception) -> tuple[int, str]:
    """The status and the one ``detail`` line an error is answered with; anything unexpected
    is a bare 500, its text logged after scrubbing, never returned."""
    for kind, status in STATUSES:
        if isinstance(exc, kind):
            return status, scrub(str(exc))
    log.error("request failed: %s: %s", type(exc).__name__, scrub(str(exc)))
    return 500, INTERNAL
