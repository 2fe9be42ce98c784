"""Flow runs that start now and go on in the background: the caller gets the flow-run id at
once (an HTTP request, an MCP tool call), while the run itself goes on in a thread.

The flow run is created in Prefect first, so its id exists before the first step, and the
engine is then handed that run to execute. The threads are daemons: stopping the server stops
its runs mid-step, which the record survives (the write-ahead log), and the same request later
resumes them.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("sandloop.background")


@dataclass(frozen=True)
class Launched:
    flow_run_id: str
    done: Future[Any]  # the flow's final state; a failure to run is its exception


class Launcher:
    """At most ``max_running`` background flow runs at a time; the rest wait their turn."""

    def __init__(self, max_running: int = 4) -> None:
        self.slots = threading.BoundedSemaphore(max_running)

    def launch(self, flow: Any, parameters: dict[str, Any]) -> Launched:
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            flow_run = client.create_flow_run(flow, parameters=parameters)
        done: Future[Any] = Future()
        worker = threading.Thread(
            target=self._run,
            args=(flow, flow_run, parameters, done),
            name=f"sandloop-run-{str(flow_run.id)[:8]}",
            daemon=True,
        )
        worker.start()
        return Launched(str(flow_run.id), done)

    def _run(
        self,
        flow: Any,
        flow_run: Any,
        parameters: dict[str, Any],
        done: Future[Any],
    ) -> None:
        from prefect.flow_engine import run_flow

        from sandloop.flows.calling import flow_settings

        with self.slots:
            if (ended := _cancelled_before_start(str(flow_run.id))) is not None:
                done.set_result(ended)  # cancelled while it waited for a slot: never starts
                return
            try:
                with flow_settings(find_server=False):  # made on this process's server
                    state = run_flow(
                        flow, flow_run=flow_run, parameters=parameters, return_type="state"
                    )
            except BaseException as exc:  # the future carries it to whoever asks
                log.warning("background flow run %s failed: %s", flow_run.id, type(exc).__name__)
                done.set_exception(exc)
                return
        done.set_result(state)


def _cancelled_before_start(flow_run_id: str) -> Any:
    """The flow run's state if it was cancelled while it waited for a slot, else None."""
    from sandloop.flows.cancelling import state_of

    try:
        state = state_of(flow_run_id)
    except Exception:  # the engine will meet the same server, and say what is wrong
        return None
    return state if state is not None and state.is_cancelled() else None
