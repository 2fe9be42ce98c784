"""Every command's known failure modes, from one table: each is one `error:` line, the exit
code the CLI promises, and no traceback. A command missing from the table fails the test, so a
new command comes with its failures. In-process (typer's runner); Prefect and the store for real
where a command reaches them. Failures that go through a flow run are checked in a child
process, where Prefect's console logging is what a user would see."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.main import get_command
from typer.testing import CliRunner

from sandloop.cli import app

ROOT = Path(__file__).resolve().parents[2]
ECHO = str(ROOT / "examples" / "networks" / "echo.yaml")
BALLOON = str(ROOT / "examples" / "networks" / "balloon.yaml")
MISSING = "/nonexistent/spec.yaml"
NO_THREAD = "ffff0000"

# command path → [(arguments after it, exit code, what the line says)]; {tmp} is a fresh folder,
# {file} an existing file in it.
FAILURES: dict[str, list[tuple[list[str], int, str]]] = {
    "doctor": [(["--bogus"], 2, "No such option")],
    "run": [
        ([MISSING, "--genesis", "x"], 2, "no such file"),
        ([ECHO], 2, "Missing option '--genesis'"),
        ([ECHO, "--genesis", "x", "--pace", "constant:inf"], 2, "pace"),
    ],
    "runs": [(["--bogus"], 2, "No such option")],
    "rate": [
        (["zz:1", "--score", "3"], 2, "hexadecimal"),
        ([f"{NO_THREAD}:1", "--score", "3"], 2, "no run has a thread"),
        (["abc", "--score", "3"], 2, "8 or more hex"),
        (["x"], 2, "Missing option '--score'"),
        (["ffffffffff", "--score", "9"], 2, "from 1 to 5"),
        (["ffffffffff", "--score", "3", "--by", "a b"], 2, "one word"),
    ],
    "prefer": [
        (["ffffffffff"], 2, "Missing argument"),
        (["ffffffffff", "eeeeeeeeee"], 2, "no step has a key"),
    ],
    "judge": [
        (["missing"], 2, "no snapshot 'missing'"),
        (["missing", "--recipe", "summarize"], 2, "not a score judge"),
        (["missing", "--recipe", "nope"], 2, "nope"),
        (["missing", "--limit", "0"], 2, "--limit 0"),
    ],
    "show": [([NO_THREAD], 2, "no run has a thread"), (["zz"], 2, "hexadecimal")],
    "cancel": [([NO_THREAD], 2, "no run has a thread"), (["zz"], 2, "hexadecimal")],
    "publish": [([NO_THREAD], 2, "no run has a thread"), (["zz"], 2, "hexadecimal")],
    "models": [(["extra"], 2, "unexpected extra argument")],
    "mcp": [
        (["--network", MISSING], 2, "no such file"),
        (["--http", "--host", "256.1.1.1"], 2, "cannot listen"),
    ],
    "api": [
        (["--port", "0"], 2, "--port"),
        (["--host", "256.1.1.1"], 2, "cannot listen"),
        (["--network", MISSING], 2, "no such file"),
        (["--network", ECHO, "--visitor-pace", "sometimes"], 2, "--visitor-pace"),
        (["--network", ECHO, "--visitor-pace", "constant:-1"], 2, "pace"),
        (["--moderate", "no-such-recipe"], 2, "no recipe 'no-such-recipe'"),
        (["--access-log", "/no-such-folder/access.log"], 2, "--access-log"),
    ],
    "tokens create": [
        ([], 2, "Missing option"),
        (["--scope", "bogus"], 2, "unknown scope"),
        (["--scope", "read", "--expires", "5y"], 2, "give minutes, hours or days"),
    ],
    "tokens list": [(["extra"], 2, "unexpected extra argument")],
    "tokens revoke": [(["zz"], 2, "not a token id"), (["abcdef12"], 2, "no token has the id")],
    "embed": [(["--batch-size", "0"], 2, "--batch-size"), (["--backend", "x"], 2, "backend")],
    "search": [
        ([], 2, "Missing argument"),
        (["x", "--backend", "x"], 2, "backend"),
        (["x", "--images"], 2, "SANDLOOP_IMAGE_EMBED_MODEL"),
    ],
    "serve": [([MISSING], 2, "no such file"), ([ECHO, "--interval", "0"], 2, "--interval")],
    "session start": [([], 2, "Missing argument 'title'")],
    "session end": [([NO_THREAD], 2, "no session")],
    "session list": [(["--bogus"], 2, "No such option")],
    "session show": [([NO_THREAD], 2, "no session")],
    "session label": [([NO_THREAD, "debug"], 2, "no run has a thread")],
    "session classify": [([NO_THREAD], 2, "no session")],
    "dialogue run": [([MISSING], 2, "no such file")],
    "dialogue show": [([NO_THREAD], 2, "no run has a thread")],
    "snapshot create": [
        ([], 2, "Missing option '--name'"),
        (["--name", "a/b"], 2, "letters"),
        (["--name", "s", "--min-score", "9"], 2, "min_score"),
        (["--name", "s", "--min-score", "5"], 2, "matches no runs"),
    ],
    "snapshot list": [(["--bogus"], 2, "No such option")],
    "snapshot show": [(["nope"], 2, "no snapshot 'nope'")],
    "snapshot delete": [(["nope"], 2, "no snapshot 'nope'")],
    "export dataset": [
        (["snap", "--out", "{tmp}/x"], 2, "see `sandloop export --help`"),
        (["nope", "--format", "hf", "--out", "{tmp}/x"], 2, "no snapshot 'nope'"),
        (["snap", "--format", "csv", "--out", "{tmp}/x"], 2, "unknown format csv"),
        (["snap", "--format", "hf", "--out", "{file}"], 2, "is a file, not a folder"),
        (["snap", "--format", "hf", "--out", "{file}/x"], 2, "is a file, not a folder"),
        (["snap", "--format", "hf", "--out", "/proc/x"], 2, "cannot write"),
        (["snap", "--format", "hf", "--out", "{tmp}/x", "--redact", "("], 2, "--redact"),
        (["snap", "--format", "hf", "--out", "{tmp}/x", "--redact", "(?=a)b"], 2, "lookaround"),
        (["snap", "--format", "hf", "--out", "{tmp}/x", "--val-fraction", "1"], 2, "fraction"),
    ],
    "export validate": [([MISSING], 2, "no such file or folder")],
    "export traces": [
        ([], 2, "--out FILE, --push, or both"),
        (["--push"], 2, "needs a Langfuse key pair"),
        (["--out", "{file}/x.json"], 2, "is a file, not a folder"),
        (["--out", "{tmp}/missing/x.json"], 2, "does not exist; create it first"),
        (["--out", "/proc/x.json"], 2, "cannot write"),
        (["--out", "{tmp}/t.json", "--snapshot", "nope"], 2, "no snapshot 'nope'"),
    ],
    "export push": [
        ([], 2, "Missing argument"),
        (["{tmp}", "ada/kites"], 2, "not an export folder"),
        (["{file}", "ada/kites"], 2, "not an export folder"),
    ],
    "keys set": [([], 2, "Missing argument 'platform'"), (["nope"], 2, "unknown platform")],
    "keys list": [(["--bogus"], 2, "No such option")],
    "keys remove": [(["nope"], 2, "unknown platform")],
    "recipe run": [(["nope", "--input", "x"], 2, "no recipe 'nope'")],
    "recipe pipeline": [([], 2, "Missing"), ([MISSING, "--input", "x"], 2, "no such file")],
    "recipe list": [(["--bogus"], 2, "No such option")],
    "recipe show": [(["nope"], 2, "no recipe 'nope'")],
    "index rebuild": [(["--backend", "bogus"], 2, "--backend 'bogus'")],
    "server start": [(["--port", "0"], 2, "--port")],
    "server stop": [(["--bogus"], 2, "No such option")],
    "server status": [(["--bogus"], 2, "No such option")],
    "sweep run": [([MISSING], 2, "no such file")],
    "sweep list": [(["--bogus"], 2, "No such option")],
    "sweep show": [(["nope"], 2, "no sweep named 'nope'")],
    "sweep report": [(["nope"], 2, "no sweep named 'nope'")],
}


def commands() -> list[str]:
    """Every leaf command of the CLI, hidden ones included, as its path."""
    found = []

    def walk(command: object, path: list[str]) -> None:
        children = getattr(command, "commands", None)
        if children:
            for name, child in children.items():
                walk(child, [*path, name])
        else:
            found.append(" ".join(path))

    walk(get_command(app), [])
    return found


def test_every_command_has_its_failure_modes_in_the_table() -> None:
    assert sorted(commands()) == sorted(FAILURES)


CASES = [(path, case) for path, cases in FAILURES.items() for case in cases]


@pytest.mark.parametrize(
    ("path", "case"), CASES, ids=[f"{p}:{' '.join(c[0])[:40]}" for p, c in CASES]
)
def test_a_failure_is_one_line(
    path: str, case: tuple[list[str], int, str], store_home: Path, tmp_path: Path
) -> None:
    args, code, match = case
    a_file = tmp_path / "file"
    a_file.write_text("")
    filled = [a.replace("{tmp}", str(tmp_path)).replace("{file}", str(a_file)) for a in args]
    typed = path.split() if path != "export dataset" else ["export"]  # typed as `export SNAP`
    result = CliRunner().invoke(
        app,
        [*typed, *filled],
        env={"SANDLOOP_HOME": str(store_home), "COLUMNS": "200"},
        prog_name="sandloop",
    )
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert match in lines[0], lines[0]
    assert "Traceback" not in result.output


def sandloop(
    *args: str, home: Path, prefect_api_url: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Without ``prefect_api_url``, the command starts Prefect's temporary server, as a first
    command on a new machine does."""
    env = {**os.environ, "SANDLOOP_HOME": str(home), "COLUMNS": "200"}
    if prefect_api_url is not None:
        env["PREFECT_API_URL"] = prefect_api_url
    return subprocess.run(
        [sys.executable, "-m", "sandloop.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_failures_inside_flow_runs_are_one_line_without_prefect_logs(
    tmp_path: Path, prefect_api_url: str
) -> None:
    """A recipe that never validates (exit 1) and an export with nothing usable (image steps in a
    text-only format, exit 2): the flow runs fail in Prefect, and the console shows only the
    command's line."""
    home = tmp_path / "home"
    never = tmp_path / "never.yaml"
    never.write_text(
        yaml.safe_dump(
            {
                "name": "never",
                "version": "1.3",
                "template": "Answer {{ input }}",
                "model": "dummy:text",
                "params": {"script": ["no", "nope"]},
                "output": {"type": "object", "required": ["answer"]},
                "refine": {"max_rounds": 1},
            }
        )
    )
    # The setting up on the session's server; the failing commands each start a temporary one.
    ran = sandloop(
        "run",
        BALLOON,
        "--genesis",
        "a kite",
        "--seed",
        "1",
        "--max-steps",
        "2",
        home=home,
        prefect_api_url=prefect_api_url,
    )
    assert ran.returncode == 0, ran.stderr
    pinned = sandloop(
        "snapshot", "create", "--name", "images", home=home, prefect_api_url=prefect_api_url
    )
    assert pinned.returncode == 0, pinned.stderr
    for args, code, match in (
        (["recipe", "run", str(never), "--input", "q"], 1, "never validated"),
        (
            ["export", "images", "--format", "sharegpt", "--out", str(tmp_path / "x")],
            2,
            "no usable",
        ),
    ):
        done = sandloop(*args, home=home)
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert done.returncode == code, done.stderr
        assert len(lines) == 1 and lines[0].startswith("error: ") and match in lines[0], lines
        assert "Traceback" not in done.stdout + done.stderr


def test_a_prefect_server_failing_after_its_retries_is_one_line() -> None:
    """Seen under load: a SQLite-backed server answered 503 to a flow run's creation after the
    client's five retries, and the command printed Prefect's traceback. Now: one line, exit 1
    (the command was right; the same command goes on)."""
    import httpx
    from prefect.exceptions import PrefectHTTPStatusError

    from sandloop.cli.common import _prefect_server_failed

    request = httpx.Request("POST", "http://127.0.0.1:4200/api/flow_runs/")
    for code, said in ((503, "answered 503 Service Unavailable"), (500, "answered 500")):
        response = httpx.Response(code, request=request)
        failed = PrefectHTTPStatusError(f"{code}", request=request, response=response)
        line = _prefect_server_failed(failed)
        assert line is not None and "http://127.0.0.1:4200 " + said in line
        assert "/api/" not in line and "run the same command again" in line
    refused = httpx.Response(422, request=request)  # a client error is not the server failing
    assert (
        _prefect_server_failed(PrefectHTTPStatusError("422", request=request, response=refused))
        is None
    )
    assert _prefect_server_failed(ValueError("x")) is None
