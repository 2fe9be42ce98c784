"""A notebook of notebooks/, executed for real in a fresh kernel, as the tests read it back."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


@dataclass(frozen=True)
class Executed:
    code: list[Any]  # the code cells, outputs filled in
    outputs: list[Any]  # every output of every code cell, in order

    @property
    def printed(self) -> str:
        return "".join(o.get("text", "") for o in self.outputs if o.output_type == "stream")

    @property
    def images(self) -> list[Any]:
        return [o for o in self.outputs if "image/png" in o.get("data", {})]

    def html(self, cell: int) -> str:
        """The last rich output of a code cell (a DataFrame's table)."""
        return str(self.code[cell].outputs[-1]["data"]["text/html"])


def execute(name: str) -> Executed:
    """Run ``notebooks/<name>`` from its own folder; fails the test on any cell's error."""
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    ).execute()
    code = [c for c in notebook.cells if c.cell_type == "code"]
    outputs = [o for c in code for o in c.get("outputs", [])]
    errors = [o for o in outputs if o.output_type == "error"]
    assert not errors, f"{name}: {errors[0].get('ename')}: {errors[0].get('evalue')}"
    return Executed(code, outputs)
