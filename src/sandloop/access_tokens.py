"""API tokens for the HTTP API: created by a person on the CLI, shown once, kept as a hash.

A token is ``sl_`` and 43 URL-safe characters (32 random bytes). The store keeps its SHA-256
and the scope it grants, so a stolen store grants nothing, and checking a token is one lookup
by its hash. Scopes nest: ``admin`` can do what ``run`` can, and ``run`` what ``read`` can.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from sandloop.errors import SandloopError
from sandloop.storage.store import AkashicStore, NotFound, sql_str

SCOPES = ("read", "run", "admin")
PREFIX = "sl_"


class TokenError(SandloopError, ValueError):
    """A scope that does not exist, or a token that cannot be revoked."""


@dataclass(frozen=True, slots=True)
class Grant:
    """What a presented token allows: its short id (the hash's first 12 digits, as `tokens
    list` shows it), scope and user."""

    id: str
    scope: str
    user: str

    def allows(self, needed: str) -> bool:
        return SCOPES.index(self.scope) >= SCOPES.index(needed)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


_UNITS = {"m": 60, "h": 3600, "d": 86_400}
MAX_LIFETIME = timedelta(days=3650)


def lifetime(text: str) -> timedelta:
    """``30d``, ``12h`` or ``90m``: how long a token lasts."""
    found = re.fullmatch(r"\s*([1-9][0-9]{0,6})\s*([mhd])\s*", text)
    if found is None:
        raise TokenError(f"--expires {text[:40]!r}: give minutes, hours or days, as 90m, 12h, 30d")
    span = timedelta(seconds=int(found[1]) * _UNITS[found[2]])
    if span > MAX_LIFETIME:
        raise TokenError(f"--expires {text}: at most 3650d; leave it out for no expiry")
    return span


def create(
    store: AkashicStore, scope: str, user: str, expires_in: timedelta | None = None
) -> tuple[str, Grant]:
    """A new token and what it grants; the token itself is not kept anywhere. ``expires_in``:
    refused after that long (as a revoked token is)."""
    if scope not in SCOPES:
        raise TokenError(f"unknown scope {scope!r}: use one of {', '.join(SCOPES)}")
    if not user.strip():
        raise TokenError("a token needs a user (--user NAME)")
    token = PREFIX + secrets.token_urlsafe(32)
    digest = token_hash(token)
    now = datetime.now(UTC)
    store.upsert(
        "tokens",
        [
            {
                "id": digest,
                "scope": scope,
                "user": user,
                "created_at": now,
                "revoked_at": None,
                "expires_at": None if expires_in is None else now + expires_in,
            }
        ],
    )
    return token, Grant(digest[:12], scope, user)


def grant_of(store: AkashicStore, token: str) -> Grant | None:
    """What ``token`` grants, or None for a token that is unknown, malformed, revoked or
    expired."""
    if not token.startswith(PREFIX) or len(token) > 200:
        return None
    rows = store.rows("tokens", f"id = {sql_str(token_hash(token))}")
    if not rows or _set(rows[0]["revoked_at"]):
        return None
    row = rows[0]
    expires = row.get("expires_at")
    if _set(expires) and pd.Timestamp(expires) <= pd.Timestamp.now(tz="UTC"):
        return None
    return Grant(str(row["id"])[:12], str(row["scope"]), str(row["user"]))


def _set(value: Any) -> bool:
    return value is not None and not pd.isna(value)


def listing(store: AkashicStore) -> pd.DataFrame:
    """Tokens by short id, newest first: never the hash in full, never the token."""
    frame = store.select("tokens")
    if frame.empty:
        columns = ["id", "scope", "user", "created_at", "revoked_at", "expires_at"]
        return pd.DataFrame(columns=columns)
    frame["id"] = frame["id"].str[:12]
    return frame.sort_values("created_at", ascending=False).reset_index(drop=True)


def revoke(store: AkashicStore, short_id: str) -> dict[str, Any]:
    """Revoke the token whose hash starts with ``short_id`` (at least 8 digits)."""
    prefix = short_id.lower()
    if len(prefix) < 8 or not all(c in "0123456789abcdef" for c in prefix):
        raise TokenError(
            f"{short_id[:40]!r} is not a token id: give 8+ hex digits from `tokens list`"
        )
    rows = store.rows("tokens", f"id LIKE {sql_str(prefix + '%')}")
    if not rows:
        raise NotFound(f"no token has the id {short_id!r}; see `sandloop tokens list`")
    if len(rows) > 1:
        raise TokenError(f"{len(rows)} tokens have ids starting with {short_id!r}; give more")
    row = {**rows[0], "revoked_at": datetime.now(UTC)}
    store.upsert("tokens", [row])
    return {"id": str(row["id"])[:12], "scope": row["scope"], "user": row["user"]}
