"""Retries follow the server: a failure's retry_after is waited out before Prefect retries."""

from __future__ import annotations

from typing import Any

import pytest
from prefect.states import Failed

from sandloop.models.errors import AuthError, RateLimited, Unavailable
from sandloop.models.router import RouteFailed
from sandloop.tasks import invoke


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    waited: list[float] = []
    monkeypatch.setattr(invoke.time, "sleep", waited.append)
    return waited


def retried(failure: Exception) -> bool:
    task: Any = invoke.invoke_model
    return invoke.retry_only_retryable(task, None, Failed(data=failure))  # type: ignore[arg-type]


def test_retry_after_is_waited_before_the_retry(sleeps: list[float]) -> None:
    assert retried(RateLimited("slow down", retry_after=2.5)) is True
    cooling = RouteFailed(
        "all cooling", retryable=True, model="route:r", decisions=[], retry_after=7
    )
    assert retried(cooling) is True
    assert sleeps == [2.5, 7]


def test_no_wait_without_retry_after_and_no_retry_when_it_cannot_help(sleeps: list[float]) -> None:
    assert retried(Unavailable("503")) is True
    assert retried(AuthError("401")) is False
    assert retried(RateLimited("come back tomorrow", retry_after=86_400)) is False
    assert sleeps == []
