"""A provider's limits, held across every worker by Prefect: global concurrency limits for
``max_concurrent``, rate limits (slots that decay) for ``rate_limit``, and a shared cooldown
when a provider says to back off.

The limits are created (or updated to the models file) on first use, named for the provider's
model (``sandloop-openai-gpt-4o-mini``, ``sandloop-rate-…``), so every worker on the same
Prefect server shares them and the UI shows them under Concurrency. A ``RateLimited`` answer
with a ``retry_after`` becomes a Prefect Variable ``sandloop-cooldown-…`` holding the time until
which no worker calls that model.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta

from prefect.client.orchestration import get_client
from prefect.concurrency.sync import concurrency, rate_limit
from prefect.exceptions import ObjectAlreadyExists
from prefect.variables import Variable

from sandloop.models.registry import ModelInfo

log = logging.getLogger("sandloop.limits")

#: The longest shared cooldown a worker waits out before its call.
MAX_COOLDOWN_S = 300.0


def limit_name(info: ModelInfo, kind: str = "") -> str:
    """Prefect's names allow letters, digits, ``-`` and ``_``; the hash keeps two models that
    slug alike apart."""
    target = f"{info.platform}:{info.model_id}"
    slug = re.sub(r"[^a-z0-9]+", "-", target.lower()).strip("-")[:60]
    digest = hashlib.blake2b(target.encode(), digest_size=3).hexdigest()
    return "-".join(p for p in ("sandloop", kind, slug, digest) if p)


def _ensure(name: str, limit: int, decay: float | None = None) -> None:
    # Already there: another worker created it between the upsert's read and its write.
    with get_client(sync_client=True) as client, contextlib.suppress(ObjectAlreadyExists):
        client.upsert_global_concurrency_limit_by_name(name, limit, decay)


def wait_out_cooldown(info: ModelInfo) -> None:
    """If any worker was told to back off from this model, wait until then."""
    until = Variable.get(limit_name(info, "cooldown"), default=None)
    if not isinstance(until, str):
        return
    try:
        remaining = (datetime.fromisoformat(until) - datetime.now(UTC)).total_seconds()
    except ValueError:
        return
    if remaining > 0:
        log.info(
            "%s: cooling down for %.1f s (a provider asked a worker to back off)",
            info.ref,
            remaining,
        )
        time.sleep(min(remaining, MAX_COOLDOWN_S))


def start_cooldown(info: ModelInfo, retry_after: float) -> None:
    """Tell every worker to leave this model alone for ``retry_after`` seconds."""
    name = limit_name(info, "cooldown")
    until = datetime.now(UTC) + timedelta(seconds=min(retry_after, MAX_COOLDOWN_S))
    current = Variable.get(name, default=None)
    if isinstance(current, str) and current >= until.isoformat():
        return  # a longer cooldown is already in force
    Variable.set(name, until.isoformat(), overwrite=True)


def shares_cooldown(info: ModelInfo) -> bool:
    """Remote providers' back-off requests, and those of any model given limits, hold for every
    worker; local models answer to no one (and pay no Variable read per call)."""
    return not info.sovereign or bool(info.limits)


@contextmanager
def held(info: ModelInfo) -> Iterator[None]:
    """Inside: this call counts against the model's limits on every worker."""
    if shares_cooldown(info):
        wait_out_cooldown(info)
    limits = info.limits
    if not limits:
        yield
        return
    with ExitStack() as stack:
        if limits.per_minute is not None:
            name = limit_name(info, "rate")
            _ensure(name, 1, limits.per_minute / 60)
            rate_limit(name, strict=True)
        if limits.max_concurrent is not None:
            name = limit_name(info)
            _ensure(name, limits.max_concurrent)
            stack.enter_context(concurrency(name, strict=True))
        yield
