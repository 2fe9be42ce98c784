"""Sending trace events to a Langfuse host through the official SDK's API client.

The events go to the public ingestion API in batches under its 3.5 MB limit; the client retries
what a retry can help (429, 5xx) with backoff. Langfuse answers 207 with per-event errors rather
than failing a batch, so those are counted and the first is shown. The 4.x SDK ships the
ingestion client and models (`langfuse.api`); the 5.x wheel does not, hence the pin.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from sandloop.errors import SandloopError, is_unreachable
from sandloop.scrub import scrub

BATCH_BYTES = 3_000_000  # under the ingestion API's 3.5 MB per request
RETRIES = 3


class TracePushError(SandloopError):
    """No SDK, no keys, or the host refused the events."""


@dataclass(frozen=True)
class TracesPushed:
    host: str
    events: int
    batches: int
    rejected: int
    first_error: str | None


def batches(events: Iterable[dict[str, Any]], limit: int = BATCH_BYTES) -> Iterator[list[Any]]:
    batch: list[dict[str, Any]] = []
    size = 0
    for event in events:
        length = len(orjson.dumps(event))
        if batch and size + length > limit:
            yield batch
            batch, size = [], 0
        batch.append(event)
        size += length
    if batch:
        yield batch


def push(
    events: Iterable[dict[str, Any]], host: str, public_key: str, secret_key: str
) -> TracesPushed:
    try:
        from langfuse.api.client import LangfuseAPI
        from langfuse.api.core.api_error import ApiError
        from langfuse.api.core.pydantic_utilities import parse_obj_as
        from langfuse.api.ingestion.types import IngestionEvent
    except ImportError:
        raise TracePushError(
            "--push needs the langfuse SDK 4.x: pip install 'langfuse>=4.18,<5'"
        ) from None
    client = LangfuseAPI(
        base_url=host.rstrip("/"), username=public_key, password=secret_key, timeout=60
    )
    sent = rejected = count = 0
    first_error: str | None = None
    for batch in batches(events):
        parsed: list[Any] = [parse_obj_as(IngestionEvent, event) for event in batch]  # type: ignore[arg-type]
        try:
            answer = client.ingestion.batch(batch=parsed, request_options={"max_retries": RETRIES})
        except ApiError as exc:
            hint = " (check the public and secret keys)" if exc.status_code in (401, 403) else ""
            raise TracePushError(
                scrub(
                    f"Langfuse at {host} refused the events: HTTP {exc.status_code}{hint}",
                    [secret_key],
                )
            ) from None
        except Exception as exc:
            if not is_unreachable(exc):
                raise
            raise TracePushError(
                scrub(f"cannot reach Langfuse at {host}: {str(exc).splitlines()[0]}", [secret_key])
            ) from None
        sent += 1
        count += len(batch)
        rejected += len(answer.errors)
        if answer.errors and first_error is None:
            error = answer.errors[0]
            first_error = scrub(f"{error.id}: {error.status} {error.message or ''}", [secret_key])
    return TracesPushed(host, count, sent, rejected, first_error)
