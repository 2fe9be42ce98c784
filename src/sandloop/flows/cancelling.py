"""Cancelling a run, through Prefect's own states, so that a cancel from the HTTP API, MCP, the
CLI or Prefect's UI is one and the same thing.

A flow run that is running is set Cancelling. A worker would kill its process, but most runs
have no worker: they run in a thread of the API server or in a CLI process. So the step driver
asks Prefect, about once a second, whether its flow run is being cancelled, and stops between
steps: every step recorded is kept, and the flow run ends Cancelled. A flow run that has not
started (queued for a slot, or a scheduled continuation) is set Cancelled at once and never
starts.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any
from uuid import UUID

from prefect import State
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType
from prefect.states import Cancelled, Cancelling

CHECK_EVERY_S = 1.0


def ask_to_stop(flow_run_id: str, why: str) -> str:
    """Running → Cancelling; not started yet → Cancelled; ended → as it was. Returns the state
    type the flow run is left in (``CANCELLING``, ``CANCELLED``, ``COMPLETED``…)."""
    wanted = UUID(flow_run_id)
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(wanted).state
        if state is None:
            return "UNKNOWN"
        if state.is_final() or state.is_cancelling():
            return state.type.value
        new: State[Any] = Cancelling(message=why) if state.is_running() else Cancelled(message=why)
        client.set_flow_run_state(wanted, new, force=True)
        return new.type.value


def state_of(flow_run_id: str) -> State[Any] | None:
    with get_client(sync_client=True) as client:
        state: State[Any] | None = client.read_flow_run(UUID(flow_run_id)).state
    return state


def is_stopping(flow_run_id: str) -> bool:
    """Whether the flow run was asked to stop (or was stopped before it started)."""
    state = state_of(flow_run_id)
    return state is not None and state.type in (StateType.CANCELLING, StateType.CANCELLED)


class CancelWatch:
    """Whether this flow run has been asked to stop, asking Prefect at most once per
    ``every_s``: a step of a few milliseconds costs no API call, and a cancel takes effect
    within about a second of the step under way ending. A server that does not answer is no
    cancel (the run goes on)."""

    def __init__(self, flow_run_id: str, every_s: float = CHECK_EVERY_S) -> None:
        self.flow_run_id, self.every_s = flow_run_id, every_s
        self._last = time.monotonic()
        self._asked = False

    def asked(self) -> bool:
        if self._asked:
            return True
        now = time.monotonic()
        if now - self._last < self.every_s:
            return False
        self._last = now
        with contextlib.suppress(Exception):
            self._asked = is_stopping(self.flow_run_id)
        return self._asked


def cancelled_meanwhile(flow_run_id: str | None) -> bool:
    """Whether a flow run that has done all its steps was asked to stop while it finished up.
    Prefect takes a Cancelling flow run only to Cancelled, so such a run must end Cancelled
    (its record says what it did), or it would stay Cancelling for ever."""
    if flow_run_id is None:
        return False
    try:
        return is_stopping(flow_run_id)
    except Exception:  # a server that does not answer cancelled nothing
        return False
