"""snapshot and export commands as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.test_cli import ECHO, sandloop


@pytest.mark.parametrize(
    "command",
    [
        ("snapshot", "create"),
        ("snapshot", "list"),
        ("snapshot", "show"),
        ("export", "validate"),
        ("export", "traces"),
    ],
)
def test_export_commands_have_help(command: tuple[str, str], cli_env: dict[str, str]) -> None:
    helped = sandloop(*command, "--help", env=cli_env)
    assert helped.returncode == 0 and "Usage" in helped.stdout


def test_snapshot_export_validate_and_traces(cli_env: dict[str, str], tmp_path: Path) -> None:
    ran = sandloop(
        "run", str(ECHO), "--genesis", "hello", "--seed", "3", "--max-steps", "6", env=cli_env
    )
    assert ran.returncode == 0, ran.stderr
    empty = sandloop("snapshot", "create", "--name", "none", "--kind", "dialogue", env=cli_env)
    assert empty.returncode == 2 and "matches no runs" in empty.stderr
    made = sandloop(
        "snapshot", "create", "--name", "echo", "--kind", "network", "--json", env=cli_env
    )
    assert made.returncode == 0 and json.loads(made.stdout)["threads"] == 1
    assert "echo" in sandloop("snapshot", "list", env=cli_env).stdout
    out = tmp_path / "ds"
    exported = sandloop(
        "export",
        "echo",
        "--format",
        "openai-chat",
        "--format",
        "sharegpt",
        "--out",
        str(out),
        "--val-fraction",
        "0.3",
        "--compress",
        "zstd",
        env=cli_env,
    )
    assert exported.returncode == 0, exported.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert "openai-chat/train.jsonl.zst" in manifest["files"]
    import pyarrow as pa

    printed = dict(
        line.strip().split(": ", 1) for line in exported.stdout.splitlines() if line[:2] == "  "
    )
    for name in ("openai-chat", "sharegpt"):  # what it says is what the files hold
        held = []
        for split in ("train", "validation"):
            path = out / name / f"{split}.jsonl.zst"
            with pa.CompressedInputStream(str(path), "zstd") as stream:
                rows = stream.read().count(b"\n")
            held.append(f"{rows} {split}")
        assert printed[name] == ", ".join(held)
    checked = sandloop("export", "validate", str(out), env=cli_env)
    assert checked.returncode == 0 and "no problems" in checked.stdout
    again = sandloop("export", "echo", "--format", "openai-chat", "--out", str(out), env=cli_env)
    assert again.returncode == 2 and "--overwrite" in again.stderr
    unknown = sandloop(
        "export", "echo", "--format", "csv", "--out", str(tmp_path / "x"), env=cli_env
    )
    assert unknown.returncode == 2 and "unknown format csv" in unknown.stderr
    missing = sandloop(
        "export", "nope", "--format", "alpaca", "--out", str(tmp_path / "y"), env=cli_env
    )
    assert missing.returncode == 2 and "no snapshot 'nope'" in missing.stderr
    bad = tmp_path / "bad" / "openai-chat"
    bad.mkdir(parents=True)
    (bad / "train.jsonl").write_text('{"messages": [{"role": "user", "content": "x"}]}\n')
    invalid = sandloop("export", "validate", str(bad.parent), env=cli_env)
    assert invalid.returncode == 1 and "example_missing_assistant_message" in invalid.stdout
    traces = tmp_path / "traces.json"
    written = sandloop("export", "traces", "--out", str(traces), "--snapshot", "echo", env=cli_env)
    assert written.returncode == 0, written.stderr
    batch = json.loads(traces.read_text())["batch"]
    assert sum(e["type"] == "generation-create" for e in batch) == 6
