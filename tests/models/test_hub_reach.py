"""A local model named by a Hub id that is not downloaded, on a machine where the Hub does not
answer: one line at once, not huggingface_hub's five retries (issue 37, item 18)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from sandloop.models.errors import NotLoadable
from sandloop.models.hub_reach import load_from, unreachable_model
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


def downloaded(cache: Path, repo_id: str, files: Path) -> Path:
    """``files`` laid out as huggingface_hub keeps a download: a snapshot and the ref to it."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / ("0" * 40)
    shutil.copytree(files, snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    return snapshot


def test_a_downloaded_model_loads_from_its_folder_when_the_hub_is_out_of_reach(
    tiny_gpt2: Path, hf_api: FakeHF, tmp_path: Path
) -> None:
    """Issue 37, item 18: a model in the Hub cache, with the Hub out of reach, made transformers
    retry before it fell back to the cache. It is loaded from its downloaded folder, which asks
    the Hub nothing; with the Hub answering, or in offline mode, loading is left as it was."""
    cache = tmp_path / "hub"
    snapshot = downloaded(cache, "someone/tiny", tiny_gpt2)
    closed = f"http://127.0.0.1:{closed_port()}"
    where = load_from("someone/tiny", endpoint=closed, offline=False, cache_dir=str(cache))
    assert Path(where) == snapshot
    # sentence-transformers' short names are found under their organisation
    aliased = load_from(
        "tiny", endpoint=closed, offline=False, aliases=("someone/tiny",), cache_dir=str(cache)
    )
    assert Path(aliased) == snapshot
    for endpoint, offline in ((hf_api.url, False), (closed, True)):
        kept = load_from("someone/tiny", endpoint=endpoint, offline=offline, cache_dir=str(cache))
        assert kept == "someone/tiny"
    not_held = load_from("someone/else", endpoint=closed, offline=False, cache_dir=str(cache))
    assert not_held == "someone/else"  # unreachable_model says why it cannot load


@pytest.mark.slow  # a process that imports transformers
def test_a_downloaded_model_with_the_hub_out_of_reach_loads_at_once(
    tiny_gpt2: Path, tmp_path: Path
) -> None:
    """The whole path, as a user meets it: online mode, a Hub that takes connections and never
    answers (a network that drops packets), the model in the cache. transformers alone had not
    loaded it after 600 s, measured here; now it loads, and no retry line is printed."""
    cache = tmp_path / "hub"
    downloaded(cache, "someone/tiny", tiny_gpt2)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)  # connections are taken, and nothing is ever read or answered
        env = {
            **os.environ,
            "HF_HUB_OFFLINE": "0",
            "TRANSFORMERS_OFFLINE": "0",
            "HF_HUB_CACHE": str(cache),
            "HF_ENDPOINT": f"http://127.0.0.1:{silent.getsockname()[1]}",
        }
        script = (
            "from sandloop.models.local import load_text_model\n"
            "loaded = load_text_model('someone/tiny', 'cpu')\n"
            "print(type(loaded.model).__name__)\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
        )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "GPT2LMHeadModel"
    assert "retry" not in done.stderr.lower(), done.stderr
