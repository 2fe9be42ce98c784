"""`sandloop snapshot show`: the selection and pinned versions in words on the terminal and as
objects in --json, not the JSON text the store keeps (issue 37, item 19)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from sandloop import api
from sandloop.cli import app
from sandloop.loops.network.spec import RunSpec


def test_snapshot_show_says_what_it_pinned(home: Path, prefect_api_url: str) -> None:
    spec = RunSpec.model_validate(
        {"network": {"name": "s", "models": ["dummy:text"]}, "genesis": "a kite", "seed": 1}
    )
    api.run_network(
        spec.model_copy(update={"stop": spec.stop.model_copy(update={"max_steps": 2})}), home
    )
    api.create_snapshot("pinned", home, kind=["network"])
    env = {"SANDLOOP_HOME": str(home), "PREFECT_API_URL": prefect_api_url, "COLUMNS": "200"}
    runner = CliRunner()

    shown = runner.invoke(app, ["snapshot", "show", "pinned"], env=env)
    assert shown.exit_code == 0, shown.output
    said = " ".join(shown.output.split())  # the console may wrap the line at its width
    assert said.startswith("pinned · status completed; kind network · pinned at ")
    head = said.split(" thread ")[0]  # before the table
    assert "{" not in head and "[" not in head
    assert "runs v" in head and "invocations v" in head

    as_json = json.loads(
        runner.invoke(app, ["snapshot", "show", "pinned", "--json"], env=env).output
    )
    assert as_json["selection"]["kind"] == ["network"] and as_json["selection"]["thread"] is None
    assert set(as_json["versions"]) >= {"runs", "invocations"}
    assert all(isinstance(v, int) for v in as_json["versions"].values())
