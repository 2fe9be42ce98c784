"""Bad input as a careless hand gives it: every refusal is one `error:` line, exit 2, no
traceback, and nothing written under the home. The CLI runs in-process (typer's runner), the
store and Prefect for real where a command reaches them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from sandloop import api
from sandloop.cli import app
from sandloop.loops.network.spec import RunSpec
from tests.store_rows import run_row, tree

ROOT = Path(__file__).resolve().parents[2]
ECHO = ROOT / "examples" / "networks" / "echo.yaml"
GOOD_SPEC = "name: probe\nmodels: [dummy:text]\n"


def invoke(args: list[str], home: Path, **env: str) -> Result:
    return CliRunner().invoke(app, args, env={"SANDLOOP_HOME": str(home), **env})


def assert_refused(result: Result, match: str = "") -> None:
    """Exit 2, one `error:` line on stderr, no traceback anywhere."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert "Traceback" not in result.output
    assert match in lines[0], lines[0]


def refused(args: list[str], home: Path, match: str = "", **env: str) -> Result:
    before = tree(home)
    result = invoke(args, home, **env)
    assert_refused(result, match)
    assert tree(home) == before, "a refused command wrote under the home"
    return result


def spec_file(tmp_path: Path, data: bytes, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


BAD_SPECS: dict[str, tuple[bytes, str]] = {
    "binary": (bytes(range(256)) * 4, "not UTF-8"),
    "utf-16": (GOOD_SPEC.encode("utf-16"), "not UTF-8"),
    "utf-16 without BOM": (GOOD_SPEC.encode("utf-16-le"), "NUL"),
    "utf-32": (GOOD_SPEC.encode("utf-32"), "not UTF-8"),
    "latin-1": ("name: caf\xe9\nmodels: [dummy:text]\n".encode("latin-1"), "not UTF-8"),
    "500 levels deep": (b"models: " + b"[" * 500 + b"]" * 500 + b"\n", "deep"),
    "a 5,000-digit integer": (b"name: x\nmodels: [dummy:text]\nseed: " + b"9" * 5000, "valid"),
    "duplicate keys": (b"name: a\nname: b\nmodels: [dummy:text]\n", "duplicate key"),
    "vocab: true": (b"models: [{model: dummy:text, params: {vocab: true}}]\n", "vocab"),
    "a 1 MB role": (
        b"models: [{model: dummy:text, role: " + b"r" * 1_000_000 + b"}]\n",
        "role",
    ),
    "a list": (b"- dummy:text\n", "mapping"),
    "empty": (b"", "mapping"),
    "not yaml": (b"models: [dummy:text\n", "not valid"),
}


@pytest.mark.parametrize("case", list(BAD_SPECS))
def test_a_bad_spec_file_is_refused(case: str, tmp_path: Path, home: Path) -> None:
    data, match = BAD_SPECS[case]
    spec = spec_file(tmp_path, data)
    refused(["run", str(spec), "--genesis", "g"], home, match)


def test_a_bad_json_spec_is_refused(tmp_path: Path, home: Path) -> None:
    spec = spec_file(tmp_path, b'{"models": ["dummy:text"], "models": []}', "spec.json")
    refused(["run", str(spec), "--genesis", "g"], home, "duplicate key")


def test_a_fifo_or_a_folder_is_not_a_spec_file(tmp_path: Path, home: Path) -> None:
    fifo = tmp_path / "spec.yaml"
    os.mkfifo(fifo)
    refused(["run", str(fifo), "--genesis", "g"], home, "not a regular file")
    refused(["run", str(tmp_path), "--genesis", "g"], home, "not a regular file")
    refused(["dialogue", "run", str(fifo)], home, "not a regular file")


@pytest.mark.parametrize(
    "pace",
    ["constant:inf", "constant:1e400", "exponential:1,2,inf", "constant:1e12", "constant:nan"],
)
def test_a_pace_that_cannot_be_waited_is_refused(pace: str, home: Path) -> None:
    refused(["run", str(ECHO), "--genesis", "g", "--pace", pace], home, "pace")


def test_an_empty_home_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for args in (["runs"], ["show", "ab"], ["run", str(ECHO), "--genesis", "g"]):
        assert_refused(CliRunner().invoke(app, [*args, "--home", ""]), "empty")
        assert_refused(CliRunner().invoke(app, args, env={"SANDLOOP_HOME": ""}), "empty")
    assert list(tmp_path.iterdir()) == []


def test_reads_never_create_the_home(tmp_path: Path) -> None:
    home = tmp_path / "not-yet"
    for args in (["runs"], ["runs", "--json"], ["snapshot", "list"], ["session", "list"]):
        result = invoke(args, home)
        assert result.exit_code == 0, result.output
    assert_refused(invoke(["show", "abc"], home), "no run")
    assert not home.exists()


def test_an_unknown_session_creates_nothing(home: Path) -> None:
    refused(["run", str(ECHO), "--genesis", "g", "--session", "nonexistent"], home, "session")
    assert not home.exists()


@pytest.mark.parametrize("prefix", ["%", "_", "a%", "' OR 1=1 --"])
def test_a_thread_prefix_is_hexadecimal(prefix: str, store_home: Path) -> None:
    refused(["show", prefix], store_home, "hexadecimal")


@pytest.mark.parametrize("name", ["' OR 1=1 --", "x" * 5000, "", "a/b", "-a"])
def test_a_snapshot_name_must_be_plain(name: str, store_home: Path) -> None:
    refused(["snapshot", "create", "--name", name], store_home, "snapshot name")


def test_an_export_never_overwrites_the_store(store_home: Path, tmp_path: Path) -> None:
    for out in (store_home, store_home / "akashic", store_home.parent, store_home / "x" / "y"):
        refused(
            ["export", "snap", "--format", "openai-chat", "--out", str(out), "--overwrite"],
            store_home,
            "overlaps the store",
        )
    assert api.list_runs(store_home)["steps"].tolist() == [3]


@pytest.mark.parametrize(
    ("out", "match"),
    [("", "empty"), ("/etc/passwd", "not a folder"), ("/proc/x", "cannot write")],
)
def test_an_export_to_an_impossible_place_is_refused(
    out: str, match: str, store_home: Path
) -> None:
    refused(["export", "snap", "--format", "openai-chat", "--out", out], store_home, match)
    assert not Path("/proc/x").exists()


def test_traces_to_an_impossible_place_are_refused(store_home: Path, tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("")
    for out, match in (
        ("/proc/x.json", "cannot write"),
        (str(a_file / "x.json"), "not a folder"),
        (str(store_home / "akashic" / "t.json"), "overlaps the store"),
        (str(tmp_path), "not a regular file"),
    ):
        refused(["export", "traces", "--out", out], store_home, match)


def test_traces_are_redacted_like_datasets(tmp_path: Path, prefect_api_url: str) -> None:
    home = tmp_path / "home"
    secret = "sk-" + "A1b2C3d4" * 4
    run = RunSpec.model_validate(
        {
            "network": {"name": "leaky", "models": ["dummy:text"]},
            "genesis": f"my key is {secret}",
            "seed": 1,
            "stop": {"max_steps": 2},
        }
    )
    api.run_network(run, home)
    out = tmp_path / "traces.json"
    result = invoke(["export", "traces", "--out", str(out)], home)
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert secret not in text and "[REDACTED:openai_key]" in text
    assert "redacted 2" in result.output  # the trace's input and step 0's input


def test_runs_lists_runs_that_have_no_stop_reason_yet(home: Path) -> None:
    """Registered, running or killed before they ended: `runs` used to crash on these (a
    missing stop reason read back as NaN under pandas 3)."""
    from sandloop.storage.store import AkashicStore

    store = AkashicStore.open(home)
    for thread, status in (("a" * 32, "registered"), ("b" * 32, "running")):
        store.put_run(run_row(thread, status=status, seed=None))
    listed = invoke(["runs"], home, COLUMNS="200")
    assert listed.exit_code == 0, (listed.output, listed.exception)
    assert "interrupted" in listed.output and "registered" in listed.output
    assert "nan" not in listed.output.lower()
