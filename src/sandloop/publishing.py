"""What the public gallery may show. A run is private until it is published: a visitor's run
(started from ``/submit``) is published as it starts, and a person publishes any other network
run with `sandloop publish` or ``POST /v1/runs/{thread}/publish``. Chats, dialogues and recipes
are someone's conversation or work and are never published.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sandloop.errors import SandloopError
from sandloop.storage.store import AkashicStore, sql_str

PUBLISHABLE = "network"


class NotPublishable(SandloopError):
    """Only network runs go on the wall."""


def set_public(store: AkashicStore, thread: str, public: bool = True) -> None:
    store.upsert(
        "published", [{"thread": thread, "public": public, "updated_at": datetime.now(UTC)}]
    )


def is_public(store: AkashicStore, thread: str) -> bool:
    rows = store.rows("published", f"thread = {sql_str(thread)}")
    return bool(rows) and rows[0]["public"] is True


def publish(store: AkashicStore, run: dict[str, Any], public: bool = True) -> dict[str, Any]:
    """Publish (or withdraw) a recorded run; refuses a run that is not a network run."""
    if run.get("kind") != PUBLISHABLE:
        raise NotPublishable(
            f"a {run.get('kind')} run is never public: only network runs go on the gallery"
        )
    thread = str(run["thread"])
    set_public(store, thread, public)
    return {"thread": thread, "public": public}
