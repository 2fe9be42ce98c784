"""The flows as deployments call them, through the session's Prefect API: parameters instead of
a thread, `seed: scheduled`, the export's `{date}` and `select`, the embedding back-fill, and a
plain run's in-process countdown (no deployment, so no hand-off)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sandloop import api
from sandloop.progress import StepEvent, observing

pytestmark = pytest.mark.usefixtures("prefect_api_url")

REPO = Path(__file__).resolve().parents[2]


def flow_run(flow_run_id: str) -> Any:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(flow_run_id)


def test_a_network_deployment_registers_its_thread_seeded_by_the_schedule(home: Path) -> None:
    from sandloop.flows.network import network_run

    run = {
        "network": str(REPO / "examples/networks/echo.yaml"),
        "genesis": "deployed",
        "seed": "scheduled",
        "stop": {"max_steps": 3},
    }
    summary = network_run(run=run, home=str(home))
    scheduled = flow_run(summary.flow_run_id).expected_start_time
    seed = int(scheduled.timestamp())
    assert summary.thread == api.run_spec_from({**run, "seed": seed}).thread()
    recorded = api.open_store(home).get_run(summary.thread)
    assert recorded is not None and recorded["seed"] == seed and recorded["steps"] == 3


def test_a_network_without_thread_or_run_is_a_clear_error(home: Path) -> None:
    from sandloop.flows.network import network_run
    from sandloop.loops.spec_files import SpecError

    with pytest.raises(SpecError, match="give a thread to resume, or run:"):
        network_run(home=str(home))
    with pytest.raises(SpecError, match="run: network: missing"):
        network_run(run={"genesis": "x"}, home=str(home))


def test_outside_a_deployment_long_waits_count_down_in_process(home: Path) -> None:
    """The policy would hand these waits off, but a plain run has no deployment to hand them to."""
    spec = api.load_run_spec(
        REPO / "examples/networks/echo.yaml",
        genesis="patient",
        seed=2,
        stop={"max_steps": 3},
        pace={"kind": "constant", "seconds": 1.5, "hand_off_after_s": 0.1},
    )
    events: list[StepEvent] = []
    with observing(events.append):
        summary = api.run_network(spec, home)
    assert summary.status == "completed" and summary.steps_this_session == 3
    assert summary.continuation is None
    waits = [e for e in events if e.status == "waiting"]
    before_step_1 = [e.waiting_s for e in waits if e.step == 1]
    assert len(before_step_1) >= 2  # a countdown, not one announcement
    assert before_step_1 == sorted(before_step_1, reverse=True) and before_step_1[0] <= 1.5
    steps = api.run_steps(summary.thread, home)
    gap = steps["started_at"].iloc[1] - steps["finished_at"].iloc[0]
    assert gap.total_seconds() >= 1.5


def test_a_dialogue_deployment_registers_its_spec(home: Path) -> None:
    from sandloop.flows.dialogue import dialogue_flow

    spec = REPO / "examples/dialogues/scripted.yaml"
    summary = dialogue_flow(spec=str(spec), seed="4", home=str(home))
    assert summary.status == "completed" and summary.turns > 0
    recorded = api.open_store(home).get_run(summary.thread)
    assert recorded is not None and recorded["kind"] == "dialogue" and recorded["seed"] == 4


def test_the_embedding_backfill_flow_embeds_what_has_no_vector(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sandloop.flows.embed import embed_backfill

    monkeypatch.setenv("SANDLOOP_EMBED_DURING_RUNS", "false")
    spec = api.load_run_spec(
        REPO / "examples/networks/echo.yaml", genesis="later", seed=3, stop={"max_steps": 4}
    )
    api.run_network(spec, home)
    assert api.open_store(home).count("embeddings") == 0
    first = embed_backfill(home=str(home))
    assert first["embedding_model"].startswith("hashing")
    assert first["embedded"] + first["reused"] == 4 and first["indexed"] == 4
    again = embed_backfill(home=str(home))
    assert again["embedded"] == again["reused"] == again["indexed"] == 0


def test_a_scheduled_export_pins_a_dated_snapshot_once(home: Path, tmp_path: Path) -> None:
    from sandloop.flows.export import export_flow

    spec = api.load_run_spec(
        REPO / "examples/networks/echo.yaml", genesis="for data", seed=3, stop={"max_steps": 4}
    )
    api.run_network(spec, home)
    params: dict[str, Any] = {
        "snapshot": "nightly-{date}",
        "formats": ["openai-chat"],
        "out": str(tmp_path / "exports/{date}"),
        "select": {"kind": ["network"]},
        "home": str(home),
    }
    state = export_flow(**params, return_state=True)
    manifest = state.result()
    day = flow_run(str(state.state_details.flow_run_id)).expected_start_time.strftime("%Y-%m-%d")
    assert manifest["snapshot"]["name"] == f"nightly-{day}"
    assert (tmp_path / "exports" / day / "manifest.json").is_file()
    # A retry of that night's run finds the snapshot pinned and writes the same files again.
    again = export_flow(**{**params, "overwrite": True})
    assert again["snapshot"] == manifest["snapshot"] and again["files"] == manifest["files"]


def test_a_continuation_the_server_refuses_is_waited_for_in_process(home: Path) -> None:
    """No such deployment (say, deleted mid-run): the run keeps its worker this once rather than
    end with nobody to carry it on."""
    from uuid import uuid4

    from prefect import flow

    from sandloop.flows.network import _hand_off
    from sandloop.loops.network.engine import now_utc

    pace = {"kind": "constant", "seconds": 60, "hand_off_after_s": 1}
    spec = api.load_run_spec(REPO / "examples/networks/echo.yaml", genesis="x", seed=1, pace=pace)

    @flow
    def hand_off_to_nowhere() -> Any:
        settings = api.settings_for(home)
        hand_off = _hand_off(str(uuid4()), spec, "t" * 32, settings, [])
        assert hand_off is not None  # in a deployment, a 60 s wait would be handed off
        return hand_off(3, now_utc(), 60.0)

    assert hand_off_to_nowhere() is None


def test_duplicates_find_one_continuation_and_a_cancelled_one_gets_a_successor() -> None:
    from datetime import timedelta

    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.states import Cancelled
    from prefect.types.entrypoint import EntrypointType

    from sandloop.flows.continuation import schedule_continuation
    from sandloop.flows.network import network_run
    from sandloop.loops.network.engine import now_utc

    deployment_id = str(
        network_run.to_deployment(
            name="continuations", entrypoint_type=EntrypointType.MODULE_PATH
        ).apply()
    )
    due = now_utc() + timedelta(hours=1)  # nobody serves it: the runs stay scheduled

    @flow
    def reach_step_5() -> Any:
        return schedule_continuation(
            deployment_id,
            thread="c" * 32,
            step=5,
            due=due,
            parameters={"thread": "c" * 32},
            name="from step 5",
            tags=[],
        )

    first, duplicate = reach_step_5(), reach_step_5()
    assert first is not None and duplicate == first
    assert abs((first.scheduled_at - due).total_seconds()) < 0.01
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(first.flow_run_id, Cancelled(), force=True)
    successor, again = reach_step_5(), reach_step_5()
    assert successor is not None and successor.flow_run_id != first.flow_run_id
    assert again == successor
    with get_client(sync_client=True) as client:
        client.delete_deployment(deployment_id)
