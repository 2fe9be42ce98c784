"""snapshot and export commands as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.test_cli import ECHO, sandloop

NEWLINE = b"\n"


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


@pytest.mark.slow  # 30 s: the whole export CLI end to end; the fast suite has each part
def test_snapshot_export_validate_and_traces(cli_env: dict[str, str], tmp_path: Path) -> None:
    # Two prompts: the split goes by prompt, and at 0.3 "goodbye" lands in validation.
    for genesis, steps in (("hello", "6"), ("goodbye", "2")):
        ran = sandloop(
            "run", str(ECHO), "--genesis", genesis, "--seed", "3", "--max-steps", steps, env=cli_env
        )
        assert ran.returncode == 0, ran.stderr
    empty = sandloop("snapshot", "create", "--name", "none", "--kind", "dialogue", env=cli_env)
    assert empty.returncode == 2 and "matches no runs" in empty.stderr
    made = sandloop(
        "snapshot", "create", "--name", "echo", "--kind", "network", "--json", env=cli_env
    )
    assert made.returncode == 0 and json.loads(made.stdout)["threads"] == 2
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
                text = bytes(stream.read())
            assert (b"goodbye" in text) == (split == "validation")  # each prompt on one side
            held.append(f"{text.count(NEWLINE)} {split}")
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
    assert sum(e["type"] == "generation-create" for e in batch) == 6 + 2


@pytest.mark.slow
def test_an_export_is_pushed_to_a_hub_with_the_official_client(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    """`export push` through huggingface_hub's create_repo and upload_folder, against a local
    Hub (HF_ENDPOINT); the pushed files are the export's bytes, the card loads from them, and
    the token shows nowhere."""
    from tests import hub_server

    token = "hf_" + "pushtoken" * 4
    server, hub = hub_server.start(token)
    try:
        env = {**cli_env, "HF_ENDPOINT": hub.url, "HF_TOKEN": token, "HF_HUB_OFFLINE": "0"}
        ran = sandloop("run", str(ECHO), "--genesis", "hub", "--seed", "1", env=env)
        assert ran.returncode == 0, ran.stderr
        assert sandloop("snapshot", "create", "--name", "pushed", env=env).returncode == 0
        out = tmp_path / "ds"
        made = sandloop("export", "pushed", "--format", "hf", "--out", str(out), env=env)
        assert made.returncode == 0, made.stderr
        pushed = sandloop("export", "push", str(out), "ada/kites", "--private", env=env)
        assert pushed.returncode == 0, pushed.stderr
        assert "ada/kites" in pushed.stdout and token not in pushed.stdout + pushed.stderr
        repo = hub.repos["ada/kites"]
        assert repo["private"] is True
        assert hub.cards_seen[0]["configs"][0]["config_name"] == "sft"  # the card was checked
        local = {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}
        assert repo["files"] == local
        again = sandloop("export", "push", str(out), "ada/kites", env=env)  # exists: a new commit
        assert again.returncode == 0 and repo["commits"] == 2, again.stderr
        refused = sandloop(
            "export", "push", str(out), "ada/kites", env={**env, "HF_TOKEN": "hf_" + "x" * 30}
        )
        assert refused.returncode == 2 and "token was refused" in refused.stderr
        assert "hf_xxxx" not in refused.stderr and "Traceback" not in refused.stderr
        (out / "hf" / "sft" / "train-00000-of-00001.parquet").write_bytes(b"changed")
        edited = sandloop("export", "push", str(out), "ada/kites", env=env)
        assert edited.returncode == 2 and "changed since it was exported" in edited.stderr
    finally:
        server.shutdown()


@pytest.mark.slow
def test_traces_are_pushed_to_langfuse_and_a_repush_updates(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    """`export traces --push` through the SDK's ingestion client to a local Langfuse that
    parses every event with the SDK's models: all accepted, a 503 retried, the same ids on a
    second push (so nothing is added), the secret key nowhere in the output."""
    from tests import langfuse_server

    secret = "sk-lf-" + "s3cret" * 5
    server, langfuse = langfuse_server.start("pk-lf-public", secret)
    try:
        env = {
            **cli_env,
            "LANGFUSE_HOST": langfuse.url,
            "LANGFUSE_PUBLIC_KEY": "pk-lf-public",
            "LANGFUSE_SECRET_KEY": secret,
        }
        ran = sandloop(
            "run", str(ECHO), "--genesis", "traced", "--seed", "2", "--max-steps", "6", env=env
        )
        assert ran.returncode == 0, ran.stderr
        langfuse.script = [503]
        pushed = sandloop("export", "traces", "--push", env=env)
        assert pushed.returncode == 0, pushed.stderr
        assert "rejected" not in pushed.stdout and secret not in pushed.stdout + pushed.stderr
        kept = dict(langfuse.kept)
        generations = [k for k in kept if k[0] == "generation-create"]
        assert len(generations) == 6 and sum(k[0] == "trace-create" for k in kept) == 1
        assert langfuse.requests == 2  # the 503, then the retry
        again = sandloop("export", "traces", "--push", "--out", str(tmp_path / "t.json"), env=env)
        assert again.returncode == 0, again.stderr
        assert langfuse.kept.keys() == kept.keys()  # updated in place, not duplicated
        written = json.loads((tmp_path / "t.json").read_text())["batch"]
        assert {(e["type"], e["body"]["id"]) for e in written} == set(kept)
        wrong = sandloop(
            "export", "traces", "--push", env={**env, "LANGFUSE_SECRET_KEY": "sk-lf-" + "x" * 30}
        )
        assert wrong.returncode == 2 and "HTTP 401" in wrong.stderr
        assert "xxxxxx" not in wrong.stderr and "Traceback" not in wrong.stderr
        missing = {k: v for k, v in env.items() if k != "LANGFUSE_PUBLIC_KEY"}
        unkeyed = sandloop("export", "traces", "--push", env=missing)
        assert unkeyed.returncode == 2 and "LANGFUSE_PUBLIC_KEY" in unkeyed.stderr
    finally:
        server.shutdown()
