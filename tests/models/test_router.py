"""The router: sovereign-first order, fallbacks on typed failures, auth marks a platform
unusable, cooldowns, and every decision in the step's metadata."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sandloop import api
from sandloop.config import Settings
from sandloop.loops.network.spec import RunSpec
from sandloop.models import registry
from sandloop.models.base import CallContext, ModelInput
from sandloop.models.factory import get_adapter
from sandloop.models.router import RouteFailed, RouterAdapter, RouterHealth
from tests import openai_server

MODELS = """
models:
  - ref: dummy:busy
    task: text-generation
    params: {fail_times: 1000, fail_with: rate_limited}
  - ref: dummy:locked
    task: text-generation
    params: {fail_times: 1000, fail_with: auth}
  - ref: dummy:picky
    task: text-generation
    params: {fail_times: 1000, fail_with: invalid_input}
  - ref: dummy:short
    task: text-generation
    max_input_chars: 5
routes:
  remote-first:
    candidates: [openai:chat, dummy:text]
  written-order:
    candidates: [openai:chat, dummy:text]
    sovereign_first: false
  busy:
    candidates: [dummy:busy, dummy:text]
    cooldown_s: 30
  only-busy:
    candidates: [dummy:busy]
    cooldown_s: 30
  locked:
    candidates: [dummy:locked, openai:chat]
  picky:
    candidates: [dummy:picky, dummy:short, dummy:text]
  tuned:
    candidates: [openai:chat]
    params:
      openai:chat: {prefix: "Say: "}
"""


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def models_file(home: Path) -> Path:
    """The home's own models file, where its routes are defined."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / "models.yaml"
    path.write_text(MODELS, encoding="utf-8")
    return path


@pytest.fixture
def clock() -> Clock:
    return Clock()


def router(
    name: str, home: Path, clock: Clock, base_url: str = "http://127.0.0.1:9/v1"
) -> RouterAdapter:
    settings = Settings(home=home, openai_base_url=base_url)
    catalog = registry.catalog_for(settings)
    return RouterAdapter(
        f"route:{name}",
        catalog.route(name),
        catalog,
        lambda info: get_adapter(info, settings),
        RouterHealth(clock=clock),
    )


def call(adapter: RouterAdapter, text: str = "a kite") -> dict:
    out = adapter.generate(ModelInput("text", text=text), {}, CallContext(1, f"step-{text}"))
    return out.metadata["route"]


def test_local_candidates_go_first_unless_the_route_says_otherwise(
    models_file: Path, home: Path, clock: Clock
) -> None:
    assert call(router("remote-first", home, clock))["chosen"] == "dummy:text"
    written = call(router("written-order", home, clock))  # openai first: unreachable here
    assert written["chosen"] == "dummy:text"
    assert written["decisions"][0]["model"] == "openai:chat"
    assert written["decisions"][0]["why"].startswith("Unavailable")


def test_a_rate_limited_candidate_cools_down_then_is_tried_again(
    models_file: Path, home: Path, clock: Clock
) -> None:
    busy = router("busy", home, clock)
    first = call(busy, "one")
    assert first["chosen"] == "dummy:text"
    assert first["decisions"][0] == {
        "model": "dummy:busy",
        "decision": "failed",
        "why": "RateLimited: dummy:busy: injected failure 1 of 1000",
    }
    second = call(busy, "two")
    assert second["decisions"][0]["decision"] == "skipped"
    assert second["decisions"][0]["why"] == "cooling down for 30s more"
    clock.now += 31
    assert call(busy, "three")["decisions"][0]["decision"] == "failed"


def test_an_auth_failure_makes_the_platform_unusable(
    models_file: Path, home: Path, clock: Clock, endpoint: tuple[openai_server.FakeOpenAI, str]
) -> None:
    _, url = endpoint
    locked = router("locked", home, clock, url)
    assert call(locked, "one")["chosen"] == "openai:chat"
    clock.now += 10_000  # no cooldown ends an auth failure
    again = call(locked, "two")
    assert again["decisions"][0]["decision"] == "skipped"
    assert again["decisions"][0]["why"].startswith("platform unusable: AuthError")


def test_bad_input_moves_on_without_a_cooldown_and_long_inputs_skip_small_models(
    models_file: Path, home: Path, clock: Clock
) -> None:
    picky = router("picky", home, clock)
    decided = call(picky, "a long input")
    assert [d["decision"] for d in decided["decisions"]] == ["failed", "skipped", "chosen"]
    assert decided["decisions"][1]["why"] == "input of 12 chars is over its limit of 5"
    assert call(picky, "x")["decisions"][0]["decision"] == "failed"  # tried again: no cooldown
    assert call(picky, "tiny")["chosen"] == "dummy:short"


def test_when_every_candidate_fails_the_error_says_why_and_when(
    models_file: Path, home: Path, clock: Clock
) -> None:
    only = router("only-busy", home, clock)
    with pytest.raises(RouteFailed) as first:
        call(only, "one")
    assert first.value.retryable and "dummy:busy: RateLimited" in str(first.value)
    with pytest.raises(RouteFailed) as second:
        call(only, "two")
    assert second.value.retry_after == 30 and second.value.retryable
    assert second.value.decisions == [
        {"model": "dummy:busy", "decision": "skipped", "why": "cooling down for 30s more"}
    ]


def test_route_params_reach_their_candidate(
    models_file: Path, home: Path, clock: Clock, endpoint: tuple[openai_server.FakeOpenAI, str]
) -> None:
    state, url = endpoint
    call(router("tuned", home, clock, url), "hello")
    assert state.requests[-1]["body"]["messages"][-1]["content"] == "Say: hello"


@pytest.mark.parametrize(
    ("routes", "message"),
    [
        ("mixed:\n    candidates: [dummy:text, dummy:text-to-image]\n", "mixes input/output types"),
        (
            "bad:\n    candidates: [dummy:text]\n    params:\n      dummy:text: {vocab: 0}\n",
            "vocab",
        ),
        (
            "stray:\n    candidates: [dummy:text]\n    params:\n      openai:x: {}\n",
            "does not list",
        ),
    ],
)
def test_a_bad_route_is_a_spec_error(tmp_path: Path, routes: str, message: str) -> None:
    path = tmp_path / "models.yaml"
    path.write_text("routes:\n  " + routes, encoding="utf-8")
    name = routes.split(":")[0]
    with pytest.raises(ValueError, match=message):
        RunSpec.model_validate(
            {"network": {"name": "r", "models": [f"route:{name}"]}, "genesis": "x"},
            context=registry.spec_context(registry.load_catalog(path)),
        )


@pytest.mark.usefixtures("prefect_api_url")
def test_a_network_records_route_decisions_and_cost(
    models_file: Path,
    home: Path,
    endpoint: tuple[openai_server.FakeOpenAI, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sandloop.models.router import HEALTH

    _, url = endpoint
    monkeypatch.setenv("SANDLOOP_OPENAI_BASE_URL", url)
    HEALTH.reset()
    run = api.run_spec_from(
        {
            "network": {
                "name": "routed",
                "models": ["route:locked", {"model": "openai:gpt-4o-mini"}],
            },
            "genesis": "a red balloon",
            "seed": 1,
            "stop": {"max_steps": 4},
        },
        home,  # whose models file defines the route
    )
    try:
        summary = api.run_network(run, home)
    finally:
        HEALTH.reset()
    assert summary.status == "completed"
    steps = api.run_steps(summary.thread, home)
    routed = [json.loads(m) for m in steps["metadata"].iloc[::2]]
    assert [m["route"]["chosen"] for m in routed] == ["openai:chat", "openai:chat"]
    assert routed[0]["route"]["decisions"][0]["decision"] == "failed"
    assert routed[1]["route"]["decisions"][0]["why"].startswith("platform unusable")
    costed = json.loads(steps["metadata"].iloc[1])
    assert costed["cost_usd"] == pytest.approx(7 / 1000 * 0.00015 + 5 / 1000 * 0.0006)
    assert "cost_usd" not in routed[0]  # openai:chat has no rates in the catalog
    assert steps["model"].iloc[0] == "route:locked"
