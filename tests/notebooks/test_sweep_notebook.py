"""notebooks/sweep.ipynb, executed for real on a sweep this test runs: the trajectories of two
networks, their figures, and the clusters of where the threads ended."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandloop import api
from sandloop.loops.sweep.spec import SweepSpec
from tests.notebooks.executed import execute


@pytest.mark.slow  # a kernel and the MiniLM model: the trajectories are tested fast elsewhere
def test_sweep_notebook_runs_on_a_real_sweep(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = SweepSpec.model_validate(
        {
            "name": "waves",
            "networks": [
                {"name": "wide", "models": ["dummy:text"]},
                {"name": "narrow", "models": [{"model": "dummy:text", "params": {"vocab": 6}}]},
            ],
            "genesis": ["a red balloon", "a lighthouse", "a kettle"],
            "seeds": {"count": 4},
            "stop": {"max_steps": 12},
        }
    )
    summary = api.run_sweep(spec, home)
    assert summary.threads_done == 24
    monkeypatch.setenv("SANDLOOP_HOME", str(home))
    monkeypatch.setenv("SANDLOOP_SWEEP", "waves")
    monkeypatch.setenv("SANDLOOP_EMBED_MODEL", "all-MiniLM-L6-v2")  # the offline default

    notebook = execute("sweep.ipynb")

    assert len(notebook.images) == 3  # a figure per network, and the networks side by side
    printed = notebook.printed
    recorded = api.open_store(home, readonly=True).invocations()
    steps, distinct = len(recorded), recorded["output"].nunique()
    # nothing was embedded during the sweep: the notebook embedded each distinct output once
    assert (
        f"24 threads, {steps} embedded steps ({distinct} outputs embedded just now) with "
        "all-MiniLM-L6-v2\n"
    ) in printed
    outcomes = notebook.html(1)
    assert "<td>wide</td>" in outcomes and "<td>narrow</td>" in outcomes
    clusters = notebook.html(4)
    assert clusters.count("<tr") - 1 >= 2  # a header, then a row per cluster
    stored = api.open_store(home, readonly=True).count("embeddings")
    assert stored == steps
