"""The notebooks' kernels speak to the session's Prefect server.

A kernel inherits this process's environment, not its Prefect settings context: without
PREFECT_API_URL it would start its own temporary server, which on a loaded 2-core machine took
longer than Prefect's 20-second start limit."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def kernel_uses_the_sessions_prefect(prefect_api_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFECT_API_URL", prefect_api_url)
