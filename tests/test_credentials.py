"""Per-user keys: resolution order, storage in a real keyring and real Prefect Secret blocks,
the CLI, and a run with a sentinel key that must appear nowhere but the request header."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from sandloop import api, credentials
from sandloop.loops.network.spec import RunSpec
from tests import openai_server
from tests.e2e.test_cli import ROOT, sandloop
from tests.hf_server import FakeHF
from tests.replicate_server import FakeReplicate


@pytest.fixture
def user() -> str:
    return f"u{uuid.uuid4().hex[:8]}"  # keys of one test never meet another's


def test_resolution_order(user: str, prefect_api_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert credentials.resolve_key("openai", user=user) is None
    monkeypatch.setenv("OPENAI_API_KEY", "from-env-1111")
    assert str(credentials.resolve_key("openai", user=user)) == "…1111 (env)"
    credentials.set_key("openai", "from-keyring-2222", user=user, plaintext_ok=True)
    assert str(credentials.resolve_key("openai", user=user)) == "…2222 (keyring)"
    monkeypatch.setenv("PREFECT_API_URL", prefect_api_url)
    credentials.set_key("openai", "from-prefect-3333", user=user, store="prefect")
    assert str(credentials.resolve_key("openai", user=user)) == "…3333 (prefect-secret)"
    resolved = credentials.resolve_key("openai", user=user, explicit="explicit-4444")
    assert resolved is not None and resolved.source == "argument"
    assert "explicit-4444" not in repr(resolved) + str(resolved)
    assert credentials.remove_key("openai", user=user) == ["keyring", "prefect-secret"]
    assert str(credentials.resolve_key("openai", user=user)) == "…1111 (env)"


def test_users_have_their_own_keys(user: str) -> None:
    credentials.set_key("hf", "hf-alice-aaaa", user=user, plaintext_ok=True)
    assert credentials.resolve_key("hf", user=user + "x") is None
    assert credentials.list_keys(user)["hf"] is not None
    assert credentials.list_keys(user)["replicate"] is None


def test_bad_platform_and_user_are_clear_errors() -> None:
    with pytest.raises(credentials.CredentialError, match="unknown platform 'opnai'"):
        credentials.resolve_key("opnai")
    with pytest.raises(credentials.CredentialError, match="use lowercase letters"):
        credentials.set_key("openai", "k", user="Bob Smith", plaintext_ok=True)


def test_keys_cli(cli_env: dict[str, str], user: str) -> None:
    env = {**cli_env, "SANDLOOP_USER": user}
    import subprocess
    import sys

    stored = subprocess.run(
        [sys.executable, "-m", "sandloop.cli", "keys", "set", "openai", "--plaintext-ok"],
        input="sk-cli-secret-9999\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert stored.returncode == 0 and "…9999" in stored.stdout
    assert "sk-cli-secret" not in stored.stdout + stored.stderr
    listed = sandloop("keys", "list", env=env).stdout
    assert "…9999" in listed and "keyring" in listed and "sk-cli-secret" not in listed
    assert (
        "removed the openai key from keyring"
        in sandloop("keys", "remove", "openai", env=env).stdout
    )
    bad = sandloop("keys", "remove", "nope", env=env)
    assert bad.returncode == 2 and bad.stderr.startswith("error: unknown platform 'nope'")


@pytest.mark.usefixtures("prefect_api_url")
def test_a_sentinel_key_appears_only_in_the_request_header(
    home: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    sentinel = f"sk-sentinel-{uuid.uuid4().hex}"
    user = f"s{uuid.uuid4().hex[:8]}"
    credentials.set_key("openai", sentinel, user=user, plaintext_ok=True)
    server, state, url = openai_server.start()
    try:
        monkeypatch.setenv("SANDLOOP_OPENAI_BASE_URL", url)
        monkeypatch.setenv("SANDLOOP_USER", user)
        monkeypatch.setenv("SANDLOOP_EMBED_MODEL", "openai:embedder")
        monkeypatch.setenv("SANDLOOP_EMBED_DURING_RUNS", "true")  # embedding with the key too
        run = RunSpec.model_validate(
            {
                "network": {"name": "keyed", "models": ["openai:m", "dummy:text"]},
                "genesis": "hello",
                "seed": 1,
                "stop": {"max_steps": 4},
            }
        )
        summary = api.run_network(run, home)
    finally:
        server.shutdown()
    assert summary.status == "completed" and summary.embedded == 4
    assert {r["authorization"] for r in state.requests} == {f"Bearer {sentinel}"}
    assert all(sentinel not in str(r["body"]) for r in state.requests)
    written = [home, Path(os.environ["PREFECT_HOME"])]  # the store and Prefect's database/logs
    for root in written:
        for path in root.rglob("*"):
            if path.is_file():
                assert sentinel.encode() not in path.read_bytes(), path
    captured = capfd.readouterr()
    assert sentinel not in captured.out + captured.err


@pytest.mark.usefixtures("prefect_api_url")
def test_replicate_and_hf_keys_appear_only_in_their_request_headers(
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    replicate_api: FakeReplicate,
    hf_api: FakeHF,
) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # only 127.0.0.1 is reached
    user = f"s{uuid.uuid4().hex[:8]}"
    sentinels = {p: f"{p}-sentinel-{uuid.uuid4().hex}" for p in ("replicate", "hf")}
    for platform, key in sentinels.items():
        credentials.set_key(platform, key, user=user, plaintext_ok=True)
    monkeypatch.setenv("SANDLOOP_USER", user)
    monkeypatch.setenv("SANDLOOP_REPLICATE_BASE_URL", replicate_api.url)
    monkeypatch.setenv("SANDLOOP_HF_BASE_URL", hf_api.url)
    hf_api.tasks["org/see"] = "image-to-text"
    run = RunSpec.model_validate(
        {
            "network": {
                "name": "keyed-remote",
                "models": ["replicate:black-forest-labs/flux-schnell", "hf:org/see@image-to-text"],
            },
            "genesis": "hello",
            "seed": 1,
            "stop": {"max_steps": 4},
        }
    )
    summary = api.run_network(run, home)
    assert summary.status == "completed"
    assert {r["authorization"] for r in replicate_api.requests} == {
        f"Bearer {sentinels['replicate']}"
    }
    assert {r["authorization"] for r in hf_api.requests} == {f"Bearer {sentinels['hf']}"}
    for root in (home, Path(os.environ["PREFECT_HOME"])):
        for path in root.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                assert not any(s.encode() in data for s in sentinels.values()), path
    captured = capfd.readouterr()
    assert not any(s in captured.out + captured.err for s in sentinels.values())


def test_a_plaintext_keyring_is_refused_unless_accepted() -> None:
    """Issue 37, item 20: keys said to be in the keyring sat base64-encoded in a file. The
    tests' backend is keyrings.alt's PlaintextKeyring (conftest), as a headless machine with
    keyrings.alt installed would have."""
    assert credentials.plaintext_keyring() == "keyrings.alt.file.PlaintextKeyring"
    with pytest.raises(credentials.CredentialError, match="--plaintext-ok"):
        credentials.set_key("openai", "sk-never-kept", user="plain")
    before = credentials.resolve_key("openai", user="plain")
    assert before is None or before.source != "keyring"  # nothing was written
    credentials.set_key("openai", "sk-kept-knowingly", user="plain", plaintext_ok=True)
    found = credentials.resolve_key("openai", user="plain")
    assert found is not None and found.source == "keyring"


def test_no_install_of_sandloop_brings_a_plaintext_keyring() -> None:
    """Issue 37, item 20: `make setup` installed keyrings.alt with the dev extras, so in the
    user's own environment the keyring became a plain file. The tests now take it from
    .test-site, outside .venv."""
    import tomllib

    import keyrings.alt

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"].values()
    specs = [*project["dependencies"], *(spec for extra in extras for spec in extra)]
    assert not [spec for spec in specs if spec.lower().startswith("keyrings")]
    assert Path(keyrings.alt.__file__).is_relative_to(ROOT / ".test-site")


def test_a_public_endpoint_without_a_key_is_refused_before_the_run_starts(
    home: Path, tmp_path: Path
) -> None:
    """Not at the first step: before anything is recorded. An endpoint the user set may take
    no key, and is left to answer for itself."""
    from typer.testing import CliRunner

    from sandloop.cli import app
    from sandloop.models.factory import MissingKey, prepare_models

    network = tmp_path / "remote.yaml"
    network.write_text("name: remote\nmodels: [{model: 'openai:gpt-4o-mini'}]\n")
    user = f"nobody-{uuid.uuid4().hex[:8]}"  # no key under this user, whatever others set
    env = {"SANDLOOP_HOME": str(home), "SANDLOOP_USER": user}
    ran = CliRunner().invoke(app, ["run", str(network), "--genesis", "hi", "--seed", "1"], env=env)
    assert ran.exit_code == 2, ran.output
    lines = [line for line in ran.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "sandloop keys set openai" in lines[0]
    assert "OPENAI_API_KEY" in lines[0] and "Traceback" not in ran.output
    assert api.list_runs(home).empty  # nothing recorded

    settings = api.settings_for(home).model_copy(update={"user": user})
    with pytest.raises(MissingKey):
        prepare_models(["openai:gpt-4o-mini"], settings)
    os.environ["OPENAI_BASE_URL"] = "http://127.0.0.1:9/v1"  # the client's own variable
    try:
        prepare_models(["openai:gpt-4o-mini"], settings)
    finally:
        del os.environ["OPENAI_BASE_URL"]
    local = settings.model_copy(update={"openai_base_url": "http://127.0.0.1:9/v1"})
    prepare_models(["openai:gpt-4o-mini"], local)  # a server of one's own: not asked
    prepare_models(
        ["replicate:black-forest-labs/flux-schnell", "dummy:text"],
        local.model_copy(update={"replicate_base_url": "http://127.0.0.1:9"}),
    )
    with pytest.raises(MissingKey, match="REPLICATE_API_TOKEN"):
        prepare_models(["replicate:black-forest-labs/flux-schnell"], settings)
