"""Many loops' next calls to one model as one task run: what a sweep does each tick, and a judge
each round of a batch. Prefect's work then grows with rounds × models, not with calls."""

from __future__ import annotations

from datetime import UTC, datetime

from prefect import State
from prefect.utilities.annotations import quote

from sandloop.config import Settings
from sandloop.flows.driver import outcome_from, value_of
from sandloop.loops.protocol import Call, Outcome
from sandloop.models.base import CallContext, ModelInput
from sandloop.storage.store import AkashicStore
from sandloop.tasks.invoke import Answers, invoke_batch


def invoke_together(
    store: AkashicStore, settings: Settings, tick: int, facet: str, model: str, calls: list[Call]
) -> list[Outcome]:
    """Each call's outcome, from one `invoke_batch` task run; the calls share model and params."""
    inputs = [
        ModelInput("text", text=c.input_value)
        if c.input_type == "text"
        else ModelInput(c.input_type, data=store.blobs.get(c.input_value))
        for c in calls
    ]
    contexts = [CallContext(c.seed, c.step_key, c.index) for c in calls]
    started = datetime.now(UTC)
    state: State[Answers] = invoke_batch(
        tick,
        facet,
        len(calls),
        model,
        quote(inputs),
        quote(calls[0].params),
        quote(contexts),
        quote(settings),
        return_state=True,
    )
    finished = datetime.now(UTC)
    task_run_id = str(state.state_details.task_run_id or "") or None
    answered = value_of(state)
    # a task that itself failed answers every row the same way
    answers = answered.rows if isinstance(answered, Answers) else [answered] * len(calls)
    return [outcome_from(answer, started, finished, task_run_id, store) for answer in answers]
