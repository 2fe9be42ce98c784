"""A provider that echoes the key it refused, in full or masked, on 401, 429 and 500: the key
must appear nowhere: not in the store, Prefect's database, states or artifacts, the console,
the CLI's output, or any export (traces included)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sandloop import api, credentials
from sandloop.cli import app
from sandloop.loops.network.spec import RunSpec
from tests import openai_server


def prefect_texts(flow_run_id: str) -> list[str]:
    """What Prefect keeps of a flow run: its state, its task runs' states, its artifacts."""
    from uuid import UUID

    from prefect import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        FlowRunFilter,
        FlowRunFilterId,
    )

    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(UUID(flow_run_id))
        task_runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(flow_run_id)]))
        )
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(flow_run_id)])
            )
        )
    texts = [repr(flow_run.state), str(flow_run.state.message if flow_run.state else "")]
    texts += [repr(t.state) for t in task_runs] + [
        str(t.state.message) for t in task_runs if t.state
    ]
    texts += [str(a.data) + str(a.description) for a in artifacts]
    assert len(task_runs) >= 2 and artifacts  # there really was something to look at
    return texts


@pytest.mark.usefixtures("prefect_api_url")
@pytest.mark.parametrize("status", ["401", "429", "500"])
@pytest.mark.parametrize("form", ["echo", "masked"])
def test_an_echoed_key_is_recorded_nowhere(
    status: str,
    form: str,
    home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    sentinel = f"sk-SENTINEL{uuid.uuid4().hex}"
    user = f"s{uuid.uuid4().hex[:8]}"
    credentials.set_key("openai", sentinel, user=user, plaintext_ok=True)
    server, state, url = openai_server.start()
    retries = 0 if status == "401" else 1
    state.script = ["ok", *[f"{status}-{form}"] * (retries + 1)]
    monkeypatch.setenv("SANDLOOP_OPENAI_BASE_URL", url)
    monkeypatch.setenv("SANDLOOP_USER", user)
    monkeypatch.setenv("SANDLOOP_RETRIES", str(retries))
    run = RunSpec.model_validate(
        {
            "network": {"name": "echoing", "models": ["openai:m"]},
            "genesis": "hello",
            "seed": 1,
            "stop": {"max_steps": 4},
        }
    )
    try:
        summary = api.run_network(run, home)
    finally:
        server.shutdown()
    assert summary.status == "failed" and summary.steps_total == 1
    assert "[secret]" in summary.error
    refused = [r for r in state.requests if r["path"] == "/v1/chat/completions"]
    assert len(refused) == 2 + retries  # the echo really happened
    assert {r["authorization"] for r in refused} == {f"Bearer {sentinel}"}

    runner = CliRunner()
    env = {"SANDLOOP_HOME": str(home)}
    thread = summary.thread
    outputs = [
        runner.invoke(app, ["show", thread[:8]], env=env),
        runner.invoke(app, ["show", thread[:8], "--json"], env=env),
        runner.invoke(app, ["runs", "--json"], env=env),
        runner.invoke(app, ["snapshot", "create", "--name", "s", "--status", "failed"], env=env),
        runner.invoke(app, ["export", "traces", "--out", str(tmp_path / "t.json")], env=env),
    ]
    assert [o.exit_code for o in outputs] == [0] * len(outputs), [o.output for o in outputs]
    assert "[secret]" in outputs[1].output
    exported = api.export_snapshot("s", ["openai-chat"], tmp_path / "dataset", home)
    assert (
        exported["counts"]["train"]["examples"] + exported["counts"]["validation"]["examples"] == 1
    )

    needles = [sentinel, sentinel[:12], sentinel[-12:]]
    texts = [o.output for o in outputs] + prefect_texts(str(summary.flow_run_id))
    captured = capfd.readouterr()
    texts += [captured.out, captured.err]
    for text in texts:
        assert not any(n in text for n in needles), text[:400]
    roots = [home, tmp_path, Path(os.environ["PREFECT_HOME"])]
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                assert not any(n.encode() in data for n in needles), path
