"""notebooks/export.ipynb, executed for real: snapshot → export → load with datasets."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandloop import api
from sandloop.loops.network.spec import RunSpec
from tests.notebooks.executed import execute


@pytest.mark.slow  # 20 s: the notebook end to end
def test_export_notebook_runs_on_a_real_store(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = RunSpec.model_validate(
        {
            "network": {"name": "nb", "models": ["dummy:text"]},
            "genesis": "a kite",
            "seed": 2,
            "stop": {"max_steps": 12, "stop_on_repeat": False},
        }
    )
    api.run_network(run, home)
    api.run_recipe("summarize", "one two three", seed=1, model="dummy:text", home=home)
    monkeypatch.setenv("SANDLOOP_HOME", str(home))
    monkeypatch.setenv("EXPORT_DIR", str(tmp_path))

    printed = execute("export.ipynb").printed
    assert "DatasetDict" in printed and "pins" in printed
    assert (tmp_path / "dataset" / "manifest.json").exists()
    assert (tmp_path / "dataset" / "hf" / "sft").is_dir()
