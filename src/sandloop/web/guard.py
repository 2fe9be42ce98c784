"""The door every HTTP request passes before any route sees it: a ``/v1`` request must carry a
known token before a byte of its body is read, and no body may be larger than its route's cap.

FastAPI reads a request's whole body before it resolves the route's dependencies, so the
token check in `web.auth.needs` comes too late to spare the server a stranger's 200 MiB. This
ASGI middleware answers 401 from the headers alone, and 413 from ``Content-Length`` (or, for
a body sent without one, as soon as the bytes read pass the cap), without reading the rest.
The route's dependency still checks the token's scope: here only "is it a token at all".
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool

from sandloop.access_tokens import Grant
from sandloop.web.access_log import TOKEN_ID

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

PUBLIC_BODY_BYTES = 64 * 1024  # a visitor's prompt is at most a few hundred characters
NO_TOKEN = "needs a token: Authorization: Bearer sl_…"
BAD_TOKEN = "unknown or revoked token"


class Guard:
    """``grants`` looks a token up (cached: `web.auth.Grants`); ``max_body`` caps a ``/v1``
    body in bytes, and public routes take at most `PUBLIC_BODY_BYTES`."""

    def __init__(self, app: App, grants: Callable[[str], Grant | None], max_body: int) -> None:
        self.app, self.grants, self.max_body = app, grants, max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        path: str = scope["path"]
        if path == "/v1" or path.startswith("/v1/"):
            grant = await self._grant(headers.get("authorization", ""))
            if isinstance(grant, str):
                await _answer(send, 401, grant, {"www-authenticate": "Bearer"})
                return
            scope.setdefault("state", {})[TOKEN_ID] = grant.id  # for the access log
            cap = self.max_body
        else:
            cap = min(self.max_body, PUBLIC_BODY_BYTES)
        declared = headers.get("content-length", "")
        if declared:
            if not declared.isascii() or not declared.isdigit():
                await _answer(send, 400, "Content-Length is not a number")
                return
            if int(declared) > cap:
                await _answer(send, 413, _too_large(cap))
                return
        body = await _read_at_most(receive, cap)
        if body is None:
            await _answer(send, 413, _too_large(cap))
            return
        await self.app(scope, _replay(body, receive), send)

    async def _grant(self, authorization: str) -> Grant | str:
        """What the token grants, or why it is refused."""
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return NO_TOKEN
        grant = await run_in_threadpool(self.grants, token.strip())
        return BAD_TOKEN if grant is None else grant


async def _read_at_most(receive: Receive, cap: int) -> list[Message] | None:
    """The request's body messages, or None once they pass ``cap`` bytes (the rest unread).
    A disconnect ends the read: the app sees it as it would have."""
    messages: list[Message] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages
        size += len(message.get("body", b""))
        if size > cap:
            return None
        if not message.get("more_body", False):
            return messages


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """The body already read, then whatever the connection says next (a disconnect)."""
    pending = list(messages)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


def _too_large(cap: int) -> str:
    return f"the request body is over this route's limit of {cap:,} bytes"


async def _answer(
    send: Send, status: int, detail: str, extra: dict[str, str] | None = None
) -> None:
    body = orjson.dumps({"detail": detail})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.encode(), v.encode()) for k, v in (extra or {}).items()]
    # the body is left unread: the server closes the connection after this answer
    headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
