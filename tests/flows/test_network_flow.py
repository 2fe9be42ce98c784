"""Network runs through a real Prefect API (the session's test server) and a real store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from sandloop import api
from sandloop.loops.network.spec import RunSpec

pytestmark = pytest.mark.usefixtures("prefect_api_url")


def spec(
    models: list[Any], genesis: str = "a red balloon", seed: int | None = 7, **run: Any
) -> RunSpec:
    return RunSpec.model_validate(
        {"network": {"name": "t", "models": models}, "genesis": genesis, "seed": seed, **run}
    )


def test_run_records_every_step_under_deterministic_keys(home: Path, tmp_path: Path) -> None:
    run = spec(["dummy:text", {"model": "dummy:text", "role": "b"}], stop={"max_steps": 6})
    summary = api.run_network(run, home)
    assert summary.status == "completed" and summary.stop_reason == "max_steps"
    steps = api.run_steps(summary.thread[:10], home)
    assert steps["step"].tolist() == list(range(6))
    assert steps["status"].eq("ok").all()
    assert steps["thread"].eq(summary.thread).all()
    # lineage: each step's parent is the previous step's key; inputs chain outputs
    assert pd.isna(steps["parent_key"].iloc[0])
    assert steps["parent_key"].iloc[1:].tolist() == steps["key"].iloc[:-1].tolist()
    assert steps["input"].iloc[1:].tolist() == steps["output"].iloc[:-1].tolist()
    assert steps["facet"].tolist() == ["dummy:text", "dummy:text#b"] * 3
    assert steps["flow_run_id"].nunique() == 1 and steps["task_run_id"].nunique() == 6

    # the same spec, genesis and seed in another store gives the same keys and outputs
    elsewhere = api.run_network(run, tmp_path / "other-home")
    again = api.run_steps(elsewhere.thread, tmp_path / "other-home")
    assert elsewhere.thread == summary.thread
    assert again["key"].tolist() == steps["key"].tolist()
    assert again.output.tolist() == steps["output"].tolist()


def test_rerun_is_reported_finished_and_writes_nothing(home: Path) -> None:
    run = spec(["dummy:text"], stop={"max_steps": 4})
    first = api.run_network(run, home)
    before = api.open_store(home).invocations()
    second = api.run_network(run, home)
    after = api.open_store(home).invocations()
    assert second.already_finished and second.steps_this_session == 0
    assert len(after) == len(before) == 4 and after["key"].is_unique
    assert first.thread == second.thread


def test_a_longer_rerun_resumes_after_the_last_step(home: Path) -> None:
    short = api.run_network(spec(["dummy:text"], stop={"max_steps": 3}), home)
    longer = api.run_network(spec(["dummy:text"], stop={"max_steps": 7}), home)
    assert longer.steps_this_session == 4 and longer.steps_total == 7
    steps = api.run_steps(short.thread, home)
    assert steps["step"].tolist() == list(range(7)) and steps["key"].is_unique
    straight = api.run_network(spec(["dummy:text"], stop={"max_steps": 7}), home / "fresh")
    assert api.run_steps(straight.thread, home / "fresh")["key"].tolist() == steps["key"].tolist()


def test_exact_repeat_stops_with_the_loop_length(home: Path) -> None:
    summary = api.run_network(
        spec([{"model": "dummy:text", "params": {"vocab": 3}}], stop={"max_steps": 50}), home
    )
    assert summary.stop_reason == "repeat" and summary.status == "completed"
    steps = api.run_steps(summary.thread, home)
    last = steps.iloc[-1]
    earlier = steps[steps["output"] == last["output"]]["step"].tolist()
    assert len(earlier) == 2 and summary.loop_length == earlier[1] - earlier[0]
    assert api.list_runs(home).iloc[0]["loop_length"] == summary.loop_length
    # resuming a run that ended in an attractor reports it finished
    assert api.run_network(
        spec([{"model": "dummy:text", "params": {"vocab": 3}}], stop={"max_steps": 50}), home
    ).already_finished


def test_unseeded_runs_never_stop_on_repeat(home: Path) -> None:
    summary = api.run_network(
        spec([{"model": "dummy:text", "params": {"vocab": 2}}], seed=None, stop={"max_steps": 8}),
        home,
    )
    assert summary.stop_reason == "max_steps" and summary.steps_total == 8


def test_retryable_failures_are_retried(home: Path) -> None:
    model = {"model": "dummy:text", "params": {"fail_times": 2, "fail_with": "unavailable"}}
    summary = api.run_network(spec([model], stop={"max_steps": 2}), home)
    assert summary.status == "completed"
    assert api.run_steps(summary.thread, home)["status"].eq("ok").all()


@pytest.mark.parametrize("kind", ["auth", "invalid_input"])
def test_a_failure_retries_cannot_fix_stops_the_run_at_once(home: Path, kind: str) -> None:
    # One injected failure: had it been retried, the second attempt would have succeeded.
    model = {"model": "dummy:text", "params": {"fail_times": 1, "fail_with": kind}}
    summary = api.run_network(spec([model], stop={"max_steps": 3}), home)
    assert summary.status == "failed" and summary.stop_reason == "failed"
    assert kind.split("_")[0].lower() in summary.error.lower()
    steps = api.run_steps(summary.thread, home)
    assert steps["status"].tolist() == ["failed"] and steps["error_type"].iloc[0] == kind
    run_row = api.list_runs(home).iloc[0]
    assert run_row["status"] == "failed" and run_row["error"] == summary.error


def test_exhausted_retries_record_the_failure_and_a_rerun_continues(home: Path) -> None:
    failing = {"model": "dummy:text", "params": {"fail_times": 50}}
    broken = api.run_network(spec(["dummy:text", failing], stop={"max_steps": 4}), home)
    assert broken.status == "failed" and broken.steps_total == 1
    steps = api.run_steps(broken.thread, home)
    assert steps["status"].tolist() == ["ok", "failed"]
    assert "Unavailable" in steps["error"].iloc[1]


def test_image_networks_store_blobs(home: Path) -> None:
    run = spec(["dummy:text-to-image", "dummy:image-to-text"], stop={"max_steps": 4})
    summary = api.run_network(run, home)
    steps = api.run_steps(summary.thread, home)
    store = api.open_store(home)
    images = steps[steps["output_type"] == "image"]
    assert len(images) == 2
    for blob in images["output"]:
        assert store.blobs.get(blob)[:4] == b"\x89PNG"
    assert steps["input"].iloc[1] == steps["output"].iloc[0]


def test_an_image_genesis_is_read_from_a_file(home: Path, tmp_path: Path) -> None:
    from sandloop.models.base import CallContext, ModelInput
    from sandloop.models.dummy import DummyAdapter

    picture = tmp_path / "seed.png"
    picture.write_bytes(
        DummyAdapter("dummy:text-to-image")
        .generate(ModelInput("text", text="x"), {}, CallContext(1, "s"))
        .data
        or b""
    )
    run = spec(
        ["dummy:image-to-text", "dummy:text-to-image"], genesis=str(picture), stop={"max_steps": 2}
    )
    summary = api.run_network(run, home)
    steps = api.run_steps(summary.thread, home)
    assert api.open_store(home).blobs.get(steps["input"].iloc[0]) == picture.read_bytes()
    assert steps["output"].iloc[0].startswith("a 32x32 picture")


def test_a_text_audio_text_network_keeps_each_sound_as_a_blob_with_its_facts(
    home: Path,
) -> None:
    import json

    from sandloop.models.audio import audio_facts

    models = ["dummy:text", "dummy:text-to-speech", "dummy:speech-to-text"]
    summary = api.run_network(spec(models, stop={"max_steps": 6}), home)
    steps = api.run_steps(summary.thread, home)
    assert steps["output_type"].tolist() == ["text", "audio", "text"] * 2
    assert steps["status"].eq("ok").all()
    store = api.open_store(home)
    for row in steps[steps["output_type"] == "audio"].itertuples():
        facts = audio_facts(store.blobs.get(row.output))
        assert json.loads(row.metadata)["audio"] == {
            "media_type": "audio/wav",
            "sample_rate": 16_000,
            "channels": 1,
            "duration_s": facts.duration_s,
        }
    # what was spoken is heard back: step 2 hears step 0's words
    assert steps["output"].iloc[2] == steps["output"].iloc[0]
    assert steps["input"].iloc[2] == steps["output"].iloc[1]


def test_an_audio_genesis_is_read_from_a_file_and_counts_by_content(
    home: Path, tmp_path: Path
) -> None:
    from sandloop.models.dummy import speak

    sound = tmp_path / "hello.wav"
    sound.write_bytes(speak("heron opal", 8_000))
    run = spec(
        ["dummy:speech-to-text", "dummy:text-to-speech"], genesis=str(sound), stop={"max_steps": 2}
    )
    summary = api.run_network(run, home)
    steps = api.run_steps(summary.thread, home)
    assert api.open_store(home).blobs.get(steps["input"].iloc[0]) == sound.read_bytes()
    assert steps["output"].iloc[0] == "heron opal"
    moved = tmp_path / "renamed.wav"
    sound.rename(moved)
    assert api.thread_of(spec(run.network.model_dump()["models"], genesis=str(moved))) == (
        summary.thread
    )


def test_pace_waits_between_steps_and_stores_the_due_time(home: Path) -> None:
    import json

    summary = api.run_network(
        spec(["dummy:text"], stop={"max_steps": 3}, pace={"kind": "constant", "seconds": 0.3}), home
    )
    steps = api.run_steps(summary.thread, home)
    # a lower bound only: the policy's wait happened (a slow machine cannot make this flaky)
    gaps = steps["started_at"].iloc[1:].reset_index(drop=True) - steps["finished_at"].iloc[:-1]
    assert all(gap.total_seconds() >= 0.29 for gap in gaps)
    due = [json.loads(m)["next_due_at"] for m in steps["metadata"]]
    assert due[0] <= steps["started_at"].iloc[1].isoformat()


def test_max_duration_stops_the_session(home: Path) -> None:
    model = {"model": "dummy:text", "params": {"delay_ms": 150}}
    summary = api.run_network(spec([model], stop={"max_steps": 100, "max_duration_s": 0.5}), home)
    assert summary.stop_reason == "max_duration" and summary.status == "stopped"
    assert 1 <= summary.steps_total < 100


def test_a_pace_wait_longer_than_max_duration_ends_the_session(home: Path) -> None:
    run = spec(
        ["dummy:text"],
        stop={"max_steps": 5, "max_duration_s": 1},
        pace={"kind": "constant", "seconds": 30},
    )
    summary = api.run_network(run, home)
    assert summary.stop_reason == "max_duration" and summary.steps_total == 1


def test_local_model_network(home: Path, tiny_gpt2: Path) -> None:
    local = {"model": f"local:{tiny_gpt2}", "params": {"max_new_tokens": 5, "prefix": "# "}}
    summary = api.run_network(spec([local, {**local, "role": "b"}], stop={"max_steps": 3}), home)
    steps = api.run_steps(summary.thread, home)
    assert steps["status"].eq("ok").all() and steps["output"].str.len().gt(0).all()


def test_task_runs_are_named_for_the_step_and_model(home: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, TaskRunFilter

    summary = api.run_network(
        spec(["dummy:text", {"model": "dummy:text", "role": "b"}], stop={"max_steps": 2}), home
    )
    flow_run_id = api.run_steps(summary.thread, home)["flow_run_id"].iloc[0]
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(flow_run_id)
        task_runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run.id])),
            task_run_filter=TaskRunFilter(),
        )
    assert flow_run.name == f"t · thread {summary.thread[:6]} · steps 0–1"
    assert flow_run.state is not None and flow_run.state.is_completed()
    assert sorted(t.name for t in task_runs) == ["step 0 · dummy:text", "step 1 · dummy:text#b"]


def test_a_run_leaves_its_embeddings_to_the_next_search(home: Path) -> None:
    """Issue 37, item 16: a run waited for its embeddings (importing sentence-transformers
    alone took 9 s of a 12-step echo run). It records its steps and ends; what is pending is
    counted, and the next search embeds it first."""
    summary = api.run_network(spec(["dummy:text"], stop={"max_steps": 5}), home)
    assert summary.embedded is None
    assert api.open_store(home).count("embeddings") == 0
    assert api.pending_embeddings(home) == api.pending_embeddings(home, summary.thread) == 5
    assert api.pending_embeddings(home, "ffff") == 0
    said: list[str] = []
    hits = api.search("anything", home, k=2, announce=said.append)
    assert said == ["embedding 5 outputs recorded since the last search or embed"]
    assert len(hits) == 2 and api.pending_embeddings(home) == 0
    bounded = api.run_network(spec(["dummy:text"], stop={"max_steps": 4}, seed=2), home)
    api.search("anything", home, k=2, catch_up=3)  # as a served search: a few at a time
    assert api.pending_embeddings(home, bounded.thread) == 1
    api.search("anything", home, k=2, announce=said.append)
    assert said[-1] == "embedding 1 outputs recorded since the last search or embed"
    assert api.pending_embeddings(home) == 0


def test_runs_embed_their_outputs_in_the_background_when_asked(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SANDLOOP_EMBED_DURING_RUNS", "true")
    summary = api.run_network(spec(["dummy:text"], stop={"max_steps": 5}), home)
    embeddings = api.open_store(home).select("embeddings")
    assert summary.embedded == 5
    assert sorted(embeddings["step"]) == list(range(5))
    assert embeddings["embedding_model"].eq("hashing-256").all()


def test_convergence_stops_with_the_matched_step(home: Path) -> None:
    import json

    # vocab 40 rarely repeats exactly within 30 steps, but hashing vectors of 4-word phrases
    # sharing three words are close: a low threshold converges early.
    run = spec(
        [{"model": "dummy:text", "params": {"vocab": 40}}],
        stop={
            "max_steps": 60,
            "stop_on_repeat": False,
            "converge_above": 0.4,
            "converge_window": 5,
        },
    )
    summary = api.run_network(run, home)
    assert summary.stop_reason == "converged"
    steps = api.run_steps(summary.thread, home)
    last = json.loads(steps["metadata"].iloc[-1])
    assert last["cosine"] >= 0.4
    assert summary.loop_length == steps["step"].iloc[-1] - last["converged_with_step"]
    assert 1 <= summary.loop_length <= 5
    again = api.run_network(run, home)
    assert again.already_finished and again.stop_reason == "converged"


def test_a_flow_run_refused_the_lock_fails_cleanly_and_changes_nothing(
    home: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """The race the CLI's early check cannot close: the lock is taken between the check and the
    flow. The flow registers only under the lock, so the refused spec is never written."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    from sandloop.flows.network import network_run
    from sandloop.storage.wal import ThreadLocked, ThreadLog

    first = spec(["dummy:text"], stop={"max_steps": 3})
    done = api.run_network(first, home)
    store = api.open_store(home)
    spec_before = store.get_run(done.thread)["spec"]  # type: ignore[index]
    holder = ThreadLog(store.wal_dir, done.thread)
    try:
        with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
            state = network_run(
                thread=done.thread,
                home=str(home),
                spec=spec(["dummy:text"], stop={"max_steps": 300}).model_dump_json(),
                return_state=True,
            )
    finally:
        holder.close()
    assert state.is_failed()
    assert isinstance(state.result(raise_on_failure=False), ThreadLocked)
    assert store.get_run(done.thread)["spec"] == spec_before  # type: ignore[index]
    assert "Traceback" not in capfd.readouterr().err


def test_resuming_a_run_whose_steps_were_lost_refuses_instead_of_recomputing(
    home: Path,
) -> None:
    from sandloop.storage.store import DamagedStore

    run = spec(["dummy:text"], stop={"max_steps": 6, "stop_on_repeat": False})
    done = api.run_network(run, home)
    store = api.open_store(home)
    store.table("invocations").delete("step >= 4")  # the store lost its last two steps
    longer = spec(["dummy:text"], stop={"max_steps": 8, "stop_on_repeat": False})
    with pytest.raises(DamagedStore, match="sandloop doctor"):
        api.run_network(longer, home)
    assert sorted(store.invocations()["step"]) == [0, 1, 2, 3]  # nothing recomputed
    row = store.get_run(done.thread)
    assert row is not None and row["steps"] == 6 and row["spec"] == run.model_dump_json()
