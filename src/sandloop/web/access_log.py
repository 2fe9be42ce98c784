"""One line per HTTP request, for whoever runs a public server: who asked, what, the answer,
how long it took, and which token (by its short id, as `sandloop tokens list` shows it).

A token is never in the line: only its id, which the door (`web.guard`) puts in the request's
state once it knows the token. The query string is left out (a client may paste a token into
it), and the path, which a stranger chooses, is cut to 200 characters with every character
that is not printable ASCII escaped, so no request can forge a line of the log.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from typing import Any, TextIO

from sandloop.scrub import scrub

log = logging.getLogger("sandloop.access")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
App = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Any]
TOKEN_ID = "sandloop_token_id"  # the key under the request's state
MAX_PATH = 200


def printable(text: str) -> str:
    """``text`` with anything but printable ASCII as an escape, and cut to `MAX_PATH`."""
    shown = text[:MAX_PATH].encode("ascii", "backslashreplace").decode("ascii")
    shown = "".join(c if 32 <= ord(c) < 127 else f"\\x{ord(c):02x}" for c in shown)
    return shown + ("…" if len(text) > MAX_PATH else "")


class AccessLog:
    """Outermost: it sees every answer, refusals by the door included. ``stream`` (stderr, an
    open file) takes the lines as `sandloop api` writes them; without one they go to the
    ``sandloop.access`` logger at INFO, for an app embedded elsewhere (off unless enabled)."""

    def __init__(self, app: App, stream: TextIO | None = None) -> None:
        self.app, self.stream = app, stream

    async def __call__(
        self,
        scope: Scope,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http" or (self.stream is None and not log.isEnabledFor(logging.INFO)):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        state = scope.setdefault("state", {})
        answered = {"status": 0, "bytes": 0}

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                answered["status"] = message["status"]
            elif message["type"] == "http.response.body":
                answered["bytes"] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            client = scope.get("client")
            line = '{} "{} {}" {} {}B {:.1f}ms token={}'.format(
                client[0] if client else "-",
                printable(str(scope.get("method", "-"))),
                scrub(printable(str(scope.get("path", "")))),
                answered["status"] or "-",
                answered["bytes"],
                (time.perf_counter() - started) * 1000,
                state.get(TOKEN_ID, "-"),
            )
            self._write(line)

    def _write(self, line: str) -> None:
        if self.stream is None:
            log.info("%s", line)
            return
        with contextlib.suppress(OSError, ValueError):  # a full disk loses a line, not a request
            self.stream.write(f"{datetime.now(UTC):%Y-%m-%d %H:%M:%S} {line}\n")
            self.stream.flush()
