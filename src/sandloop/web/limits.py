"""A per-client rate limit for the public routes (a visitor's genesis submission).

Clients are told apart by a salted hash of their address, kept in memory only: the record
holds no personal data, and a restart forgets them all.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time


class RateLimit:
    """At most ``count`` accepted requests per client in any ``per_s`` seconds."""

    def __init__(self, count: int, per_s: float) -> None:
        self.count, self.per_s = count, per_s
        self.salt = secrets.token_bytes(16)
        self.seen: dict[bytes, list[float]] = {}
        self.lock = threading.Lock()

    def allow(self, client: str) -> float | None:
        """None when the request may go ahead (and counts it), else seconds until it may."""
        who = hashlib.blake2b(client.encode(), key=self.salt, digest_size=16).digest()
        now = time.monotonic()
        with self.lock:
            if len(self.seen) > 100_000:
                self.seen = {k: v for k, v in self.seen.items() if v and now - v[-1] < self.per_s}
            recent = [t for t in self.seen.get(who, []) if now - t < self.per_s]
            if len(recent) >= self.count:
                self.seen[who] = recent
                return self.per_s - (now - recent[0])
            recent.append(now)
            self.seen[who] = recent
        return None
