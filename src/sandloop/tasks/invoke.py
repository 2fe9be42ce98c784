"""The model call as a Prefect task: one task run per step, named for the UI, retried only when a
retry can help."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from prefect import State, Task, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.tasks import exponential_backoff

from sandloop.config import Settings
from sandloop.credentials import known_secrets
from sandloop.models.base import CallContext, ModelInput, ModelOutput
from sandloop.models.errors import RateLimited, is_retryable
from sandloop.models.factory import get_adapter
from sandloop.models.registry import lookup
from sandloop.scrub import scrub_exception, scrub_value
from sandloop.tasks import limits


def secrets_of(settings: Settings) -> list[str]:
    """The keys and passwords a model call may have used, to scrub from what it says."""
    found = known_secrets(settings.user)
    for secret in (settings.es_api_key, settings.es_password):
        if secret is not None:
            found.append(secret.get_secret_value())
    return found


# A server asking for a longer pause than this is not going to be waited out inside a step.
MAX_RETRY_AFTER_S = 300.0


def retry_only_retryable(task: Task[Any, Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Auth errors, bad input and content filters fail the same way every time: stop at once.

    A failure that says when to come back (``retry_after``: a 429's Retry-After, a route's
    cooldown) is waited for here, before Prefect's own backoff delay, because Prefect's delay
    is fixed per task and cannot follow the server.
    """
    failure = state.result(raise_on_failure=False)
    if not is_retryable(failure):
        return False
    retry_after = getattr(failure, "retry_after", None)
    if retry_after is not None:
        if retry_after > MAX_RETRY_AFTER_S:
            return False
        time.sleep(retry_after)
    return True


# NO_CACHE: a model call must run every time it is asked for; idempotency comes from the
# store's keys, and hashing large inputs for a cache key would cost on every step.
@task(
    task_run_name="step {step} · {facet}",
    retries=3,
    retry_delay_seconds=exponential_backoff(backoff_factor=0.5),
    retry_jitter_factor=0.5,
    retry_condition_fn=retry_only_retryable,
    cache_policy=NO_CACHE,
    persist_result=False,
)
def invoke_model(
    step: int,
    facet: str,
    model: str,
    model_input: ModelInput,
    params: dict[str, Any],
    ctx: CallContext,
    settings: Settings,
) -> ModelOutput:
    info = lookup(model)
    try:
        with limits.held(info):
            output = get_adapter(info, settings).generate(model_input, params, ctx)
    except Exception as exc:
        retry_after = getattr(exc, "retry_after", None)
        if isinstance(exc, RateLimited) and retry_after and limits.shares_cooldown(info):
            limits.start_cooldown(info, retry_after)  # every worker backs off, not just this
        # Before Prefect sees it: its state, logs and events would keep an echoed key.
        raise scrub_exception(exc, secrets_of(settings)) from None
    if "route" in output.metadata:  # the route's failed candidates recorded their errors
        route = scrub_value(output.metadata["route"], secrets_of(settings))
        output = replace(output, metadata={**output.metadata, "route": route})
    chosen = output.metadata.get("route", {}).get("chosen")
    rates = (lookup(chosen) if chosen else info).cost_usd
    if rates is not None:
        cost = round(rates.estimate(output.usage), 8)
        return replace(output, metadata={**output.metadata, "cost_usd": cost})
    return output
