"""What a path allows, said whole: an ``OPTIONS`` request, or a method the path does not take,
is answered with every method of every route on that path.

Starlette answers such a request from the first route whose path matches, so ``OPTIONS
/v1/chat`` said ``Allow: POST`` although ``GET`` is there too. CORS preflights are not
answered here: the CORS middleware, outside this one, takes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send


class Methods:
    """``routes``: the app's routes as their routers declare them (FastAPI keeps included
    routers as wrappers of its own, so the app's route list does not show them)."""

    def __init__(self, app: ASGIApp, routes: Sequence[BaseRoute]) -> None:
        self.app, self.routes = app, routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            allowed = self._allowed(scope)
            if allowed:
                status = 204 if scope["method"] == "OPTIONS" else 405
                await _answer(send, status, ", ".join(sorted(allowed | {"OPTIONS"})))
                return
        await self.app(scope, receive, send)

    def _allowed(self, scope: Scope) -> set[str]:
        """The path's methods when no route takes this method on it; else nothing."""
        allowed: set[str] = set()
        refused: set[str] = set()
        for route in self.routes:
            match, _ = route.matches(scope)
            if match is Match.NONE:
                continue
            methods = set(getattr(route, "methods", None) or ())
            if getattr(route, "name", "").startswith("refused"):
                # a route that refuses, on a word like ``take``, the methods a parameter
                # route (``{subtask}``) would otherwise take: they are not allowed here
                refused |= methods
                continue
            if match is Match.FULL:
                return set()
            allowed |= methods
        return allowed - refused


async def _answer(send: Send, status: int, allow: str) -> None:
    body = b"" if status == 204 else b'{"detail":"method not allowed; see Allow"}'
    headers: list[Any] = [(b"allow", allow.encode())]
    if body:
        headers += [(b"content-type", b"application/json")]
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
