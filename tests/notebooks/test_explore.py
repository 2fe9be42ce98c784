"""notebooks/explore.ipynb, executed for real against a store this test builds."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandloop import api
from sandloop.embedding.embedders import get_embedder
from sandloop.embedding.service import embed_and_index
from sandloop.loops.network.spec import RunSpec
from tests.notebooks.executed import execute


@pytest.mark.slow  # the whole notebook through a kernel (~20 s)
def test_explore_notebook_runs_on_a_real_store(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = RunSpec.model_validate(
        {
            "network": {
                "name": "nb",
                "models": ["dummy:text", {"model": "dummy:text", "role": "b"}],
            },
            "genesis": "a red balloon",
            "seed": 5,
            "stop": {"max_steps": 16, "stop_on_repeat": False},
        }
    )
    api.run_network(run, home)
    embed_and_index(api.open_store(home), get_embedder("all-MiniLM-L6-v2"))
    monkeypatch.setenv("SANDLOOP_HOME", str(home))

    notebook = execute("explore.ipynb")

    assert len(notebook.images) == 2  # the trajectory and the heat-map
    assert "16 embedded steps, 384-d vectors" in notebook.printed
    search_table = notebook.html(-1)
    assert search_table.count("<tr") == 6  # a header and k=5 hits
    # the query is the run's last output: it finds itself first, at cosine 1
    assert "<td>1.000000</td>" in search_table.split("</tr>")[1]
