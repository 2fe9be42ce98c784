"""`sandloop serve`'s refusals, in-process: each names what is wrong before anything is served.
(Serving itself runs against a real server in tests/flows/test_deployments.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from sandloop.cli import app

ROOT = Path(__file__).resolve().parents[2]
ECHO = str(ROOT / "examples/networks/echo.yaml")
RECIPE = str(ROOT / "src/sandloop/loops/recipe/builtin/summarize.yaml")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([ECHO], "is a network: give --genesis"),
        ([ECHO, "--genesis", "x", "--seed", "soon"], "--seed 'soon': use a number"),
        ([ECHO, "--genesis", "x", "--cron", "* * * * *", "--interval", "60"], "not both"),
        ([ECHO, "--genesis", "x", "--hand-off-after", "5"], "--hand-off-after needs a --pace"),
        ([ECHO, "--genesis", "x", "--pace", "slowly"], "--pace 'slowly' not understood"),
        ([str(ROOT / "examples/recipes/review.yaml")], "is a pipeline: give --input"),
        ([RECIPE, "--input", "x", "--seed", "scheduled"], "a recipe's --seed is a number"),
        ([str(ROOT / "deployments/prefect.yaml")], "not a network (models:), dialogue (actors:)"),
        ([str(ROOT / "nowhere.yaml")], "nowhere.yaml: no such file"),
    ],
)
def test_serve_refuses_what_it_cannot_serve(args: list[str], message: str, home: Path) -> None:
    result = CliRunner().invoke(app, ["serve", *args, "--home", str(home)])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())


def test_serve_needs_a_prefect_server(home: Path) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: None}):
        result = CliRunner().invoke(app, ["serve", ECHO, "--genesis", "x", "--home", str(home)])
    assert result.exit_code == 2
    assert "needs a Prefect server: run `sandloop server start`" in " ".join(result.output.split())
