"""The model call as a Prefect task: one task run per step, named for the UI, retried only when a
retry can help."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
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
from sandloop.models.registry import ModelInfo, catalog_for
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
    info = catalog_for(settings).lookup(model)
    try:
        with limits.held(info):
            output = get_adapter(info, settings).generate(model_input, params, ctx)
    except Exception as exc:
        raise _failure(info, exc, settings) from None
    return _finished(info, output, settings)


def _failure(info: ModelInfo, exc: Exception, settings: Settings) -> Exception:
    retry_after = getattr(exc, "retry_after", None)
    if isinstance(exc, RateLimited) and retry_after and limits.shares_cooldown(info):
        limits.start_cooldown(info, retry_after)  # every worker backs off, not just this
    # Before Prefect sees it: its state, logs and events would keep an echoed key.
    scrubbed = scrub_exception(exc, secrets_of(settings))
    return scrubbed if isinstance(scrubbed, Exception) else exc


def _finished(info: ModelInfo, output: ModelOutput, settings: Settings) -> ModelOutput:
    """An output with its route's errors scrubbed and its cost estimated."""
    if "route" in output.metadata:  # the route's failed candidates recorded their errors
        route = scrub_value(output.metadata["route"], secrets_of(settings))
        output = replace(output, metadata={**output.metadata, "route": route})
    chosen = output.metadata.get("route", {}).get("chosen")
    rates = (catalog_for(settings).lookup(chosen) if chosen else info).cost_usd
    if rates is not None:
        cost = round(rates.estimate(output.usage), 8)
        return replace(output, metadata={**output.metadata, "cost_usd": cost})
    return output


#: Rows of a batch a remote model without a batch call is asked for at once (its own
#: ``max_concurrent`` lowers it); local models take theirs one after another.
REMOTE_FAN_OUT = 8


def _one_by_one(
    info: ModelInfo,
    adapter: Any,
    inputs: list[ModelInput],
    params: dict[str, Any],
    ctxs: list[CallContext],
) -> list[ModelOutput | Exception]:
    def call(i: int) -> ModelOutput | Exception:
        try:
            with limits.held(info):
                output: ModelOutput = adapter.generate(inputs[i], params, ctxs[i])
                return output
        except Exception as exc:
            return exc

    workers = 1 if info.sovereign else (info.limits.max_concurrent or REMOTE_FAN_OUT)
    if workers == 1 or len(inputs) == 1:
        return [call(i) for i in range(len(inputs))]
    with ThreadPoolExecutor(max_workers=min(workers, len(inputs))) as pool:
        return list(pool.map(call, range(len(inputs))))


class Answers:
    """A batch's answers, one per row. Not a list: Prefect links each item of a task's list (or
    dataclass) result to its state for the rest of the flow run, ~400 bytes a row that a sweep
    of 100k threads would hold to its end."""

    __slots__ = ("rows",)

    def __init__(self, rows: list[ModelOutput | Exception]) -> None:
        self.rows = rows


# One task run per tick and model of a sweep; a failed row is that row's answer, retried inside
# the task (only the rows whose failure a retry can help), so Prefect's retries stay off.
@task(
    task_run_name="tick {tick} · {facet} · {size} threads",
    retries=0,
    cache_policy=NO_CACHE,
    persist_result=False,
)
def invoke_batch(
    tick: int,
    facet: str,
    size: int,
    model: str,
    inputs: list[ModelInput],
    params: dict[str, Any],
    ctxs: list[CallContext],
    settings: Settings,
) -> Answers:
    """Each row's output, or the typed error that failed it (the other rows go on)."""
    info = catalog_for(settings).lookup(model)
    adapter = get_adapter(info, settings)
    batch_call = getattr(adapter, "generate_batch", None)
    results: list[ModelOutput | Exception | None] = [None] * len(inputs)
    pending = list(range(len(inputs)))
    for attempt in range(settings.retries + 1):
        asked = [inputs[i] for i in pending]
        contexts = [ctxs[i] for i in pending]
        if batch_call is not None:
            try:
                with limits.held(info):
                    answers: list[ModelOutput | Exception] = batch_call(asked, params, contexts)
            except Exception as exc:  # the whole batch failed: every row, the same way
                answers = [exc] * len(asked)
        else:
            answers = _one_by_one(info, adapter, asked, params, contexts)
        again = []
        for i, answer in zip(pending, answers, strict=True):
            if (
                isinstance(answer, Exception)
                and is_retryable(answer)
                and attempt < settings.retries
            ):
                again.append(i)
            elif isinstance(answer, Exception):
                results[i] = _failure(info, answer, settings)
            else:
                results[i] = _finished(info, answer, settings)
        if not again:
            break
        delays = [getattr(answers[pending.index(i)], "retry_after", None) or 0.0 for i in again]
        time.sleep(min(MAX_RETRY_AFTER_S, max([settings.retry_backoff_s * 2**attempt, *delays])))
        pending = again
    return Answers([r if r is not None else RuntimeError("no answer") for r in results])
