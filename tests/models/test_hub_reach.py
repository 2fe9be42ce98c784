"""A local model named by a Hub id that is not downloaded, on a machine where the Hub does not
answer: one line at once, not huggingface_hub's five retries (issue 37, item 18)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from sandloop.models.errors import NotLoadable
from sandloop.models.hub_reach import unreachable_model
from sandloop.models.local import LocalTextAdapter
from tests.hf_server import FakeHF


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # free once closed: nothing listens there


def test_a_missing_model_with_the_hub_out_of_reach_is_one_reason() -> None:
    endpoint = f"http://127.0.0.1:{closed_port()}"
    why = unreachable_model("someone/never-downloaded", endpoint=endpoint, offline=False)
    assert why is not None
    assert why.startswith(f"it is not downloaded, and the Hub at {endpoint} does not answer")
    assert "name a folder" in why


def test_a_load_goes_ahead_when_it_may_succeed(tiny_gpt2: Path, hf_api: FakeHF) -> None:
    closed = f"http://127.0.0.1:{closed_port()}"
    assert unreachable_model(str(tiny_gpt2), endpoint=closed, offline=False) is None  # a folder
    assert unreachable_model("someone/x", endpoint=closed, offline=True) is None  # fails fast
    # a Hub that answers anything, even a 404, is left to answer for the model itself
    assert unreachable_model("someone/x", endpoint=hf_api.url, offline=False) is None


def test_the_tests_offline_hub_leaves_loading_to_transformers(tmp_path: Path) -> None:
    """The tests run with HF_HUB_OFFLINE (conftest): the check stands aside, and a missing
    model is transformers' own NotLoadable, as before."""
    adapter = LocalTextAdapter("local:someone/never-downloaded", "someone/never-downloaded")
    with pytest.raises(NotLoadable, match="cannot load local model 'someone/never-downloaded'"):
        adapter.load()
