"""notebooks/export.ipynb, executed for real: snapshot → export → load with datasets."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from sandloop import api
from sandloop.loops.network.spec import RunSpec

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "export.ipynb"


@pytest.mark.usefixtures("prefect_api_url")
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

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    ).execute()

    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    printed = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "DatasetDict" in printed and "pins" in printed
    assert (tmp_path / "dataset" / "manifest.json").exists()
    assert (tmp_path / "dataset" / "hf" / "data").is_dir()
