"""Bearer tokens on every route: the scope a route needs against the token's grant.

A grant is looked up once per token per ``ttl_s`` (a revoked token stops working within it),
so a busy client costs the store one read every few seconds, not one per request.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from sandloop import access_tokens
from sandloop.access_tokens import Grant

bearer = HTTPBearer(auto_error=False, description="a token from `sandloop tokens create`")


class Grants:
    def __init__(self, look_up: Callable[[str], Grant | None], ttl_s: float = 5.0) -> None:
        self.look_up, self.ttl_s = look_up, ttl_s
        self.cache: dict[str, tuple[float, Grant | None]] = {}

    def __call__(self, token: str) -> Grant | None:
        digest = access_tokens.token_hash(token)  # the token itself is not kept, even in memory
        now = time.monotonic()
        found = self.cache.get(digest)
        if found is None or now - found[0] > self.ttl_s:
            if len(self.cache) > 10_000:
                self.cache.clear()
            found = self.cache[digest] = (now, self.look_up(token))
        return found[1]


def reach(grant: Grant) -> str | None:
    """Whose chats a token reaches: its user's own, or everyone's (None) for an admin token."""
    return None if grant.allows("admin") else grant.user


def needs(scope: str) -> Any:
    """A dependency that lets a request through with a token granting ``scope``."""

    def check(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Grant:
        if credentials is None:
            raise HTTPException(
                401, "needs a token: Authorization: Bearer sl_…", {"WWW-Authenticate": "Bearer"}
            )
        grant: Grant | None = request.app.state.grants(credentials.credentials)
        if grant is None:
            raise HTTPException(401, "unknown or revoked token", {"WWW-Authenticate": "Bearer"})
        if not grant.allows(scope):
            raise HTTPException(403, f"this token grants {grant.scope}; the route needs {scope}")
        return grant

    return Depends(check)


Reader = Annotated[Grant, needs("read")]
Runner = Annotated[Grant, needs("run")]
