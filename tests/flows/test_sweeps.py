"""Sweeps through a real Prefect API and a real store: each thread an ordinary network run with
the keys `sandloop run` gives it, one task run per tick and model, a failing row failing only
its thread, and a re-run that goes on only with what is unfinished."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from sandloop import api
from sandloop.loops.sweep.spec import SweepSpec

pytestmark = pytest.mark.usefixtures("prefect_api_url")

ROOT = Path(__file__).resolve().parents[2]
ECHO = ROOT / "examples/networks/echo.yaml"


def sweep_file(folder: Path, **fields: Any) -> Path:
    spec = {
        "name": "tides",
        "networks": [str(ECHO)],
        "genesis": ["a red balloon", "a lighthouse"],
        "seeds": [1, 2],
        "stop": {"max_steps": 6, "stop_on_repeat": False},
        **fields,
    }
    path = folder / "tides.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def task_runs_of(flow_run_id: str, expected: int) -> list[Any]:
    """The flow run's task runs, once the server has recorded them and their names (it does so
    after the flow returns, from events: a name may come a moment after the run)."""
    from uuid import UUID

    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    flow_filter = FlowRunFilter(id=FlowRunFilterId(any_=[UUID(flow_run_id)]))
    deadline = time.monotonic() + 60
    with get_client(sync_client=True) as client:
        while True:
            found = client.read_task_runs(flow_run_filter=flow_filter, limit=expected + 10)
            named = all(r.name.startswith("tick ") for r in found)
            if (len(found) >= expected and named) or time.monotonic() > deadline:
                return list(found)
            time.sleep(0.2)


def test_a_sweep_thread_has_the_keys_and_outputs_of_the_same_run_alone(
    home: Path, tmp_path: Path
) -> None:
    spec = api.load_sweep(sweep_file(tmp_path))
    summary = api.run_sweep(spec, home)
    assert (summary.threads, summary.threads_done, summary.failed) == (4, 4, 0)
    assert summary.steps_this_session == 24 and summary.stop_reasons == {"max_steps": 4}
    threads = api.sweep_threads("tides", home)
    assert threads["status"].eq("completed").all() and threads["steps"].eq(6).all()

    alone = api.load_run_spec(
        ECHO, genesis="a lighthouse", seed=2, stop={"max_steps": 6, "stop_on_repeat": False}
    )
    solo = api.run_network(alone, tmp_path / "alone")
    assert solo.thread in set(threads["thread"])
    in_sweep = api.run_steps(solo.thread, home)
    by_itself = api.run_steps(solo.thread, tmp_path / "alone")
    assert in_sweep["key"].tolist() == by_itself["key"].tolist()
    assert in_sweep["output"].tolist() == by_itself["output"].tolist()
    assert in_sweep["parent_key"].iloc[1:].tolist() == in_sweep["key"].iloc[:-1].tolist()
    assert in_sweep["flow_run_id"].nunique() == 1  # the sweep's one flow run


def test_a_sweep_makes_one_task_run_per_tick_and_model(home: Path, tmp_path: Path) -> None:
    spec = api.load_sweep(sweep_file(tmp_path, seeds={"count": 8}))
    summary = api.run_sweep(spec, home)
    assert summary.threads == 16 and summary.steps_this_session == 96
    # echo's two models take turns, every thread at the same step: one batch per tick
    assert summary.task_runs == 6
    assert summary.flow_run_id is not None
    runs = task_runs_of(summary.flow_run_id, 6)
    assert len(runs) == 6
    assert {r.name for r in runs} == {
        f"tick {t} · {facet} · 16 threads"
        for t, facet in enumerate(["dummy:text", "dummy:text#answer"] * 3)
    }


def test_a_failing_model_fails_its_threads_and_the_others_go_on(home: Path, tmp_path: Path) -> None:
    broken = {
        "name": "broken",
        "models": [{"model": "dummy:text", "params": {"fail_times": 9, "fail_with": "auth"}}],
    }
    spec = api.load_sweep(sweep_file(tmp_path, networks=[str(ECHO), broken]))
    summary = api.run_sweep(spec, home)
    assert (summary.threads, summary.failed) == (8, 4)
    assert summary.stop_reasons == {"failed": 4, "max_steps": 4}
    threads = api.sweep_threads("tides", home)
    failed = threads[threads["network"] == "broken"]
    assert failed["status"].eq("failed").all() and failed["steps"].eq(0).all()
    steps = api.run_steps(str(failed["thread"].iloc[0]), home)
    assert steps["status"].tolist() == ["failed"] and steps["error_type"].tolist() == ["auth"]
    ok = threads[threads["network"] == "echo"]
    assert ok["status"].eq("completed").all() and ok["steps"].eq(6).all()


def test_a_re_run_goes_on_with_unfinished_threads_only(home: Path, tmp_path: Path) -> None:
    drift = {"name": "drift", "models": [{"model": "dummy:text", "params": {"vocab": 3}}]}
    path = sweep_file(
        tmp_path, networks=[str(ECHO), drift], stop={"max_steps": 4, "stop_on_repeat": True}
    )
    first = api.run_sweep(api.load_sweep(path), home)
    assert first.threads_done == 8
    store = api.open_store(home)
    before = {r["thread"]: r for r in store.rows("runs")}
    looped = {t for t, r in before.items() if r["stop_reason"] == "repeat"}
    assert looped  # three words: the drift threads fall into a loop within four steps
    keys_before = set(store.invocations()["key"])

    longer = api.load_sweep(
        sweep_file(
            tmp_path, networks=[str(ECHO), drift], stop={"max_steps": 10, "stop_on_repeat": True}
        )
    )
    again = api.run_sweep(longer, home)
    assert again.already_finished == len(looped)
    after = {r["thread"]: r for r in api.open_store(home).rows("runs")}
    for thread in looped:  # untouched
        assert after[thread]["updated_at"] == before[thread]["updated_at"]
    invocations = api.open_store(home).invocations()
    assert invocations["key"].is_unique and keys_before <= set(invocations["key"])
    for thread, run in after.items():
        if thread not in looped and run["stop_reason"] == "max_steps":
            assert run["steps"] == 10

    third = api.run_sweep(longer, home)  # nothing left: nothing written
    assert third.steps_this_session == 0 and third.already_finished == 8
    assert len(api.open_store(home).invocations()) == len(invocations)


def test_members_are_deduplicated_and_expanded_lazily(tmp_path: Path) -> None:
    spec = api.load_sweep(
        sweep_file(tmp_path, genesis=["a", "b", "a"], seeds=[1, 1, 2], max_concurrent=3)
    )
    assert isinstance(spec, SweepSpec)
    assert spec.size() == 9 and spec.duplicates() == 5
    members = list(spec.members())
    assert [(m.spec.genesis, m.spec.seed) for m in members] == [
        ("a", 1),
        ("a", 2),
        ("b", 1),
        ("b", 2),
    ]
    big = SweepSpec.model_validate(
        {
            **spec.model_dump(),
            "genesis": [f"prompt {i}" for i in range(1000)],
            "seeds": {"count": 100},
        }
    )
    first = next(big.members())  # a generator: 100k members are never all built at once
    assert first.spec.genesis == "prompt 0" and big.size() == 100_000


def test_trajectories_embed_what_is_missing_once_and_agree_with_the_runs(
    home: Path, tmp_path: Path
) -> None:
    from sandloop.embedding.embedders import get_embedder

    drift = {"name": "drift", "models": [{"model": "dummy:text", "params": {"vocab": 3}}]}
    path = sweep_file(
        tmp_path, networks=[str(ECHO), drift], stop={"max_steps": 8, "stop_on_repeat": True}
    )
    api.run_sweep(api.load_sweep(path), home)
    store = api.open_store(home, readonly=True)
    texts = store.invocations("status = 'ok' AND output_type = 'text'")

    # without embedding, nothing has a vector yet: no drift, and nothing is written
    bare = api.sweep_trajectories("tides", home, embedding_model="hashing-64", embed=False)
    assert bare.drift.empty and bare.outcomes["converged"].eq(0).all()
    assert api.open_store(home, readonly=True).count("embeddings") == 0
    assert bare.outcomes.set_index("network").loc["drift", "looped"] > 0  # loops need no vectors

    made = api.sweep_trajectories("tides", home, embedding_model="hashing-64")
    vectors = api.open_store(home, readonly=True).select("embeddings")
    assert sorted(vectors["key"]) == sorted(texts["key"])  # every text step, once
    assert made.embedded == texts["output"].nunique()
    again = api.sweep_trajectories("tides", home, embedding_model="hashing-64")
    assert again.embedded == 0
    assert again.drift.equals(made.drift) and again.clusters.equals(made.clusters)

    runs = {r["thread"]: r for r in store.rows("runs")}
    for row in made.threads.itertuples():
        run = runs[row.thread]
        assert row.steps == run["steps"]
        if run["stop_reason"] == "repeat":  # the run stopped where the loop was found
            assert (row.loop_step, row.loop_length) == (run["steps"] - 1, run["loop_length"])

    # drift at step 2 of echo, worked out from the recorded texts
    embedder = get_embedder("hashing-64")
    echo = texts[texts["thread"].isin(set(made.threads.query("network == 'echo'")["thread"]))]
    at = {s: echo[echo["step"] == s].sort_values("thread") for s in (1, 2)}
    genesis = dict(zip(made.threads["thread"], made.threads["genesis"], strict=True))
    now = embedder.embed(at[2]["output"].tolist())
    before = embedder.embed(at[1]["output"].tolist())
    origin = embedder.embed([genesis[t] for t in at[2]["thread"]])
    row = made.drift.query("network == 'echo' and step == 2").iloc[0]
    assert row["threads"] == len(at[2]) == 4
    assert row["to_genesis"] == pytest.approx(float(np.mean(np.sum(now * origin, axis=1))))
    assert row["to_previous"] == pytest.approx(float(np.mean(np.sum(now * before, axis=1))))
    assert made.clusters["threads"].sum() == 8
    assert set(made.clusters["medoid"]) <= set(texts["output"])


def test_a_remote_model_is_fanned_out_under_its_limit_and_a_refused_row_fails_alone(
    home: Path, tmp_path: Path, endpoint: tuple[Any, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    state, url = endpoint
    state.chat_delay_s = 0.2
    state.script = ["ok"] * 5 + ["401"]  # the sixth call of the first tick is refused
    monkeypatch.setenv("SANDLOOP_OPENAI_BASE_URL", url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-sweep-fan-out")
    home.mkdir(parents=True)
    (home / "models.yaml").write_text(
        "models:\n  - ref: openai:fanned\n    source: gpt-fanned\n    max_concurrent: 3\n"
    )
    remote = {"name": "remote", "models": ["openai:fanned"]}
    path = sweep_file(tmp_path, networks=[remote], seeds={"count": 4}, stop={"max_steps": 3})
    summary = api.run_sweep(api.load_sweep(path), home)

    assert (summary.threads, summary.failed) == (8, 1)
    assert summary.stop_reasons == {"failed": 1, "max_steps": 7}
    calls = [r for r in state.requests if r["path"] == "/v1/chat/completions"]
    assert len(calls) == 8 + 7 + 7  # the refused thread made its one call and stopped
    # eight threads wanted a call at once: the model's limit let three through, and did
    assert state.max_in_flight == 3
    threads = api.sweep_threads("tides", home)
    failed = threads[threads["status"] == "failed"]
    steps = api.run_steps(str(failed["thread"].iloc[0]), home)
    assert steps["error_type"].tolist() == ["auth"]
    assert "sk-test-sweep-fan-out" not in steps["error"].iloc[0]
    done = threads[threads["status"] == "completed"]
    assert len(done) == 7 and done["steps"].eq(3).all()


def test_a_text_image_text_sweep_drifts_from_text_step_to_text_step(
    home: Path, tmp_path: Path
) -> None:
    panic = {"name": "panic", "models": ["dummy:text-to-image", "dummy:image-to-text"]}
    path = sweep_file(tmp_path, networks=[panic], stop={"max_steps": 6, "stop_on_repeat": False})
    summary = api.run_sweep(api.load_sweep(path), home)
    assert (summary.threads_done, summary.failed) == (4, 0)
    steps = api.open_store(home, readonly=True).invocations()
    assert set(steps.groupby("output_type").size().items()) == {("image", 12), ("text", 12)}

    made = api.sweep_trajectories("tides", home, embedding_model="hashing-64")
    assert made.embedded == steps[steps["output_type"] == "text"]["output"].nunique()
    assert made.drift["step"].tolist() == [1, 3, 5]  # the captions; images have no vectors
    assert made.drift["threads"].eq(4).all()
    assert made.threads["steps"].eq(6).all()  # loops are looked for over every step
    assert made.clusters["threads"].sum() == 4


@pytest.mark.slow  # a sweep, then every picture through a CLIP
def test_with_an_image_model_the_pictures_drift_from_their_genesis(
    home: Path, tmp_path: Path, tiny_clip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sandloop.embedding.embedders import ClipEmbedder

    monkeypatch.setenv("SANDLOOP_EMBED_DURING_RUNS", "false")
    panic = {"name": "panic", "models": ["dummy:text-to-image", "dummy:image-to-text"]}
    path = sweep_file(tmp_path, networks=[panic], stop={"max_steps": 4, "stop_on_repeat": False})
    api.run_sweep(api.load_sweep(path), home)
    monkeypatch.setenv("SANDLOOP_IMAGE_EMBED_MODEL", str(tiny_clip))

    made = api.sweep_trajectories("tides", home, embedding_model=str(tiny_clip))
    store = api.open_store(home, readonly=True)
    pictures = store.invocations("output_type = 'image'")
    assert made.embedded == pictures["output"].nunique()  # each picture once
    assert made.drift["step"].tolist() == [0, 2]  # the pictures, in the CLIP's space
    clip = ClipEmbedder(str(tiny_clip))
    genesis = dict(zip(made.threads["thread"], made.threads["genesis"], strict=True))
    at_2 = pictures[pictures["step"] == 2].sort_values("thread")
    now = clip.embed_images([store.blobs.get(k) for k in at_2["output"]])
    origin = clip.embed([genesis[t] for t in at_2["thread"]])  # words and pictures, one space
    row = made.drift.query("step == 2").iloc[0]
    assert row["to_genesis"] == pytest.approx(float(np.mean(np.sum(now * origin, axis=1))))
