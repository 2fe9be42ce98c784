"""The openai platform through the official client, against a local OpenAI-compatible server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sandloop import api
from sandloop.loops.network.spec import RunSpec
from sandloop.models import errors
from sandloop.models.base import CallContext, ModelInput
from sandloop.models.openai_chat import OpenAIChatAdapter
from tests import openai_server


def test_chat_completion_sends_the_prompt_and_records_usage(
    endpoint: tuple[openai_server.FakeOpenAI, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    state, url = endpoint
    monkeypatch.setenv("OPENAI_API_KEY", "sk-chat-secret-5555")
    model = OpenAIChatAdapter("openai:llama3", "llama3", url)
    params = {"system": "Be brief.", "prefix": "Describe: ", "suffix": "!", "temperature": 0.2}
    out = model.generate(ModelInput("text", text="a red balloon"), params, CallContext(42, "s"))
    assert out.text == openai_server.chat_answer("Describe: a red balloon!")
    assert out.usage == {"input_tokens": 7, "output_tokens": 5, "model": "llama3"}
    sent = state.requests[-1]
    assert sent["path"] == "/v1/chat/completions"
    assert sent["body"]["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Describe: a red balloon!"},
    ]
    assert sent["body"]["seed"] == 42 and sent["body"]["temperature"] == 0.2
    assert sent["authorization"] == "Bearer sk-chat-secret-5555"


@pytest.mark.parametrize(
    ("mode", "error", "retryable"),
    [
        ("401", errors.AuthError, False),
        ("429", errors.RateLimited, True),
        ("quota", errors.QuotaExceeded, False),
        ("500", errors.Unavailable, True),
        ("slow", errors.Timeout, True),
        ("malformed", errors.InvalidOutput, False),
        ("filtered", errors.ContentFiltered, False),
    ],
)
def test_failures_are_typed(
    endpoint: tuple[openai_server.FakeOpenAI, str], mode: str, error: type, retryable: bool
) -> None:
    state, url = endpoint
    state.script.append(mode)
    model = OpenAIChatAdapter("openai:m", "m", url)
    with pytest.raises(error) as info:
        model.generate(ModelInput("text", text="x"), {"timeout_s": 0.5}, CallContext(1, "s"))
    assert errors.is_retryable(info.value) is retryable
    if mode == "429":
        assert info.value.retry_after == 0.05


def test_unreachable_endpoint_is_unavailable() -> None:
    model = OpenAIChatAdapter("openai:m", "m", "http://127.0.0.1:9/v1")
    with pytest.raises(errors.Unavailable, match="cannot reach the endpoint"):
        model.generate(ModelInput("text", text="x"), {}, CallContext(1, "s"))


@pytest.mark.usefixtures("prefect_api_url")
def test_a_network_mixing_local_and_remote_models(
    endpoint: tuple[openai_server.FakeOpenAI, str],
    home: Path,
    tiny_gpt2: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    state, url = endpoint
    monkeypatch.setenv("SANDLOOP_OPENAI_BASE_URL", url)
    state.script.extend(["500", "429"])  # two retryable failures on the first remote call
    run = RunSpec.model_validate(
        {
            "network": {
                "name": "mixed",
                "models": [
                    {"model": f"local:{tiny_gpt2}", "params": {"max_new_tokens": 6}},
                    {"model": "openai:llama3", "params": {"prefix": "Answer: "}},
                    "dummy:text",
                ],
            },
            "genesis": "a red balloon",
            "seed": 3,
            "stop": {"max_steps": 6},
        }
    )
    summary = api.run_network(run, home)
    assert summary.status == "completed"
    steps = api.run_steps(summary.thread, home)
    remote = steps[steps["model"] == "openai:llama3"]
    assert len(remote) == 2 and remote["status"].eq("ok").all()
    for row in remote.itertuples():
        assert row.output == openai_server.chat_answer("Answer: " + row.input)
        assert json.loads(row.metadata)["usage"] == {
            "input_tokens": 7,
            "output_tokens": 5,
            "model": "llama3",
        }
    assert steps["input"].iloc[1:].tolist() == steps["output"].iloc[:-1].tolist()


@pytest.mark.usefixtures("prefect_api_url")
def test_an_auth_failure_stops_the_run_without_retrying(
    endpoint: tuple[openai_server.FakeOpenAI, str], home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state, url = endpoint
    monkeypatch.setenv("SANDLOOP_OPENAI_BASE_URL", url)
    state.script.append("401")
    run = RunSpec.model_validate(
        {
            "network": {"name": "auth", "models": ["openai:m"]},
            "genesis": "x",
            "seed": 1,
            "stop": {"max_steps": 2},
        }
    )
    summary = api.run_network(run, home)
    assert summary.status == "failed" and "AuthError" in summary.error
    assert len([r for r in state.requests if r["path"] == "/v1/chat/completions"]) == 1
