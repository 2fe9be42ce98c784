"""Prefect's settings for a flow run that this process starts and runs, in one place.

- Prefect's heartbeat thread makes every flow run wait about 1 s at its end, and has no
  environment switch, so it is turned off for the call.
- A process that names no Prefect server (no ``PREFECT_API_URL``, none in its profile) would
  start a temporary one, which costs seconds. When `sandloop server start` keeps one up, a call
  from Python (a notebook, a script) uses it, as the CLI does.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def flow_settings(*, find_server: bool = True) -> Iterator[None]:
    """Around a flow call. ``find_server=False`` where the flow run was created already, on the
    server this process chose at its start: it must run where it was made."""
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        get_current_settings,
        temporary_settings,
    )

    updates: dict[Any, Any] = {PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}
    unnamed = find_server and get_current_settings().api.url is None
    if unnamed:
        from sandloop import server

        if (found := server.managed()) is not None:
            updates[PREFECT_API_URL] = found.url
    with temporary_settings(updates):
        yield
