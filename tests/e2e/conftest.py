"""Fixtures the CLI tests share."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sandloop import api
from sandloop.loops.network.spec import RunSpec


@pytest.fixture(scope="module")
def store_home(tmp_path_factory: pytest.TempPathFactory, prefect_api_url: str) -> Iterator[Path]:
    """A home with one finished run and a snapshot of it (`snap`), for the refusal and
    failure-mode tests: one per module, since each module owns its home."""
    home = tmp_path_factory.mktemp("refusals") / "home"
    run = RunSpec.model_validate(
        {
            "network": {"name": "probe", "models": ["dummy:text"]},
            "genesis": "a kite",
            "seed": 1,
            "stop": {"max_steps": 3},
        }
    )
    api.run_network(run, home)
    api.create_snapshot("snap", home)
    yield home
