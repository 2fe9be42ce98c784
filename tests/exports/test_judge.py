"""Judge verdicts and critic scores as records: a judge recipe run over a snapshot, on a real
store and Prefect, and what score-filtered snapshots make of its verdicts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sandloop import api
from sandloop.exports.writer import ExportOptions, export, snapshot_examples
from sandloop.judging import JudgeError
from sandloop.loops.network.spec import RunSpec
from sandloop.loops.recipe.spec import RecipeSpec
from sandloop.models.registry import load_catalog
from tests.exports.test_exports import pinned

CATALOG = load_catalog(None)  # the built-in models: all these snapshots use

pytestmark = pytest.mark.usefixtures("prefect_api_url")

JUDGE = "judge:judge-exchange@1"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, prefect_api_url: str) -> Path:
    home = tmp_path_factory.mktemp("judge-home")
    for seed in (1, 2, 3):
        spec = RunSpec.model_validate(
            {
                "network": {"name": "judged", "models": ["dummy:text"]},
                "genesis": "a paper kite",
                "seed": seed,
                "stop": {"max_steps": 5, "stop_on_repeat": False},
            }
        )
        api.run_network(spec, home)
    api.create_snapshot("all", home)
    return home


def verdicts(home: Path) -> list[dict]:
    return [r for r in api.open_store(home).rows("scores") if r["kind"] == "judge"]


def test_each_output_gets_one_verdict_with_the_judges_key(home: Path) -> None:
    examples = list(snapshot_examples(pinned(home), CATALOG))
    summary = api.judge_snapshot("all", home=home, model="dummy:judge")
    assert summary.examples == len(examples) == 15 and summary.judge == JUDGE
    assert summary.verdicts == 15 and summary.unscored == summary.failed == 0
    # a round per batch, one task run each: not a flow or a task run per verdict
    assert summary.task_runs == 1
    store = api.open_store(home)
    recorded = {r["key"]: r for r in store.rows("invocations")}
    rows = verdicts(home)
    assert sorted(r["key"] for r in rows) == sorted(e.vector_key for e in examples)
    for row in rows:
        judged, verdict = recorded[row["key"]], recorded[row["judge_key"]]
        assert row["by"] == JUDGE and (row["thread"], row["step"]) == (
            judged["thread"],
            judged["step"],
        )
        assert verdict["kind"] == "recipe" and judged["output"] in verdict["input"]
        said = json.loads(verdict["output"])
        assert row["score"] == said["score"] and row["note"] == said["reason"]
    mean = sum(r["score"] for r in rows) / len(rows)
    assert summary.mean_score == pytest.approx(mean, abs=1e-3)
    assert len({r["score"] for r in rows}) > 1  # the dummy judge tells outputs apart


def test_a_rerun_keeps_the_verdicts_and_calls_no_model(home: Path) -> None:
    first = api.judge_snapshot("all", home=home, model="dummy:judge")
    calls = api.open_store(home).count("invocations")
    ids = sorted(r["id"] for r in verdicts(home))
    again = api.judge_snapshot("all", home=home, model="dummy:judge")
    assert again.already == again.verdicts == first.verdicts and again.task_runs == 0
    assert api.open_store(home).count("invocations") == calls
    assert sorted(r["id"] for r in verdicts(home)) == ids


def test_a_stopped_judge_goes_on_where_it_stopped(tmp_path: Path, home: Path) -> None:
    other = tmp_path / "again"
    spec = RunSpec.model_validate(
        {
            "network": {"name": "judged", "models": ["dummy:text"]},
            "genesis": "a glass harbor",
            "seed": 4,
            "stop": {"max_steps": 6, "stop_on_repeat": False},
        }
    )
    api.run_network(spec, other)
    api.create_snapshot("all", other)
    part = api.judge_snapshot("all", home=other, model="dummy:judge", limit=2)
    assert part.examples == part.verdicts == 2
    rest = api.judge_snapshot("all", home=other, model="dummy:judge")
    assert rest.examples == rest.verdicts == 6 and rest.already == 2


def test_snapshots_select_by_the_judges_scores(home: Path, tmp_path: Path) -> None:
    api.judge_snapshot("all", home=home, model="dummy:judge")
    good = {r["key"] for r in verdicts(home) if r["score"] >= 4}
    assert good, "the fixture's seeds give some outputs a 4 or 5"
    api.create_snapshot("judged-good", home, rated_by=JUDGE, min_score=4)
    manifest = export(
        pinned(home, "judged-good"),
        ExportOptions(("openai-chat",), tmp_path / "out", val_fraction=0.0, dedupe="none"),
        CATALOG,
    )
    assert manifest["counts"]["train"]["by_kind"] == {"network": len(good)}
    assert manifest["skipped"]["below_score_filter"] == 15 - len(good)
    # a user's name does not match the judge's scores
    with pytest.raises(Exception, match="matches no runs"):
        api.create_snapshot("nobody", home, rated_by="judge-exchange", min_score=1)


@pytest.mark.slow  # a judge pass and two exports: make test keeps its margin
def test_a_snapshot_leaves_the_judges_runs_out_unless_asked(home: Path, tmp_path: Path) -> None:
    api.judge_snapshot("all", home=home, model="dummy:judge")
    runs = api.list_runs(home)
    judges = runs[runs["phase"] == "judge"]
    assert len(judges) == 15 and set(judges["kind"]) == {"recipe"}
    api.create_snapshot("after-judging", home)  # no --kind: every kind, as the probe did
    manifest = export(
        pinned(home, "after-judging"),
        ExportOptions(("openai-chat",), tmp_path / "out", val_fraction=0.0, dedupe="none"),
        CATALOG,
    )
    assert manifest["counts"]["train"]["by_kind"] == {"network": 15}
    assert manifest["skipped"]["judge_or_moderation_runs"] == 15
    api.create_snapshot("with-judges", home, include_judges=True)
    asked = export(
        pinned(home, "with-judges"),
        ExportOptions(("openai-chat",), tmp_path / "asked", val_fraction=0.0, dedupe="none"),
        CATALOG,
    )
    assert asked["counts"]["train"]["by_kind"] == {"network": 15, "recipe": 15}
    assert "judge_or_moderation_runs" not in asked["skipped"]


def test_compared_answers_become_preference_pairs_for_dpo(home: Path, tmp_path: Path) -> None:
    store = api.open_store(home)
    firsts = sorted(
        store.rows("invocations", "kind = 'network' AND step = 0"), key=lambda r: r["key"]
    )
    assert len({r["input"] for r in firsts}) == 1  # three seeds answer the one genesis
    distinct = list({r["output"]: r for r in firsts}.values())
    summary = api.judge_snapshot("all", home=home, compare=True, model="dummy:judge")
    assert summary.mode == "compare" and summary.judge == "judge:judge-pair@1"
    assert summary.examples == summary.verdicts == len(distinct) - 1 >= 1
    pairs = [r for r in store.rows("scores") if r["by"] == "judge:judge-pair@1"]
    recorded = {r["key"]: r for r in store.rows("invocations")}
    for pair in pairs:
        verdict = recorded[pair["judge_key"]]
        a, b = (r["output"] for r in (recorded[pair["key"]], recorded[pair["other_key"]]))
        better = json.loads(verdict["output"])["better"]
        shown_a = verdict["input"].split("Answer A: ")[1].split("\n\nAnswer B: ")[0]
        assert shown_a == (a if better == "A" else b)
    api.create_snapshot("compared", home)
    out = tmp_path / "dpo"
    manifest = export(
        pinned(home, "compared"), ExportOptions(("openai-dpo",), out, val_fraction=0.0), CATALOG
    )
    assert manifest["pairs"] == {"judge:judge-pair@1": len(pairs)}
    dpo = [
        json.loads(line) for line in (out / "openai-dpo" / "train.jsonl").read_text().splitlines()
    ]
    chosen = {recorded[p["key"]]["output"]: recorded[p["other_key"]]["output"] for p in pairs}
    assert {
        d["preferred_output"][0]["content"]: d["non_preferred_output"][0]["content"] for d in dpo
    } == chosen


def test_the_cli_judges_and_compares(home: Path) -> None:
    from typer.testing import CliRunner

    from sandloop.cli import app

    for extra, mode in (([], "score"), (["--compare"], "compare")):
        result = CliRunner().invoke(
            app,
            ["judge", "all", "--model", "dummy:judge", "--json", *extra],
            env={"SANDLOOP_HOME": str(home)},
        )
        assert result.exit_code == 0, result.output
        summary = json.loads(result.stdout)
        assert summary["mode"] == mode and summary["verdicts"] >= 1


def test_a_recipe_that_gives_no_score_is_not_a_judge(home: Path) -> None:
    runs = len(api.list_runs(home))
    with pytest.raises(JudgeError, match="not a score judge"):
        api.judge_snapshot("all", "summarize", home, model="dummy:judge")
    with pytest.raises(Exception, match="no snapshot 'missing'"):
        api.judge_snapshot("missing", home=home, model="dummy:judge")
    assert len(api.list_runs(home)) == runs


def test_a_verdict_off_the_scale_is_counted_not_recorded(tmp_path: Path, home: Path) -> None:
    judge = tmp_path / "judge-harsh.yaml"
    judge.write_text(
        "name: judge-harsh\nversion: '2'\ntemplate: 'Rate: {{ input }}'\n"
        "output: {type: object, properties: {score: {type: number}}, required: [score]}\n"
        "model: dummy:text\nparams: {script: ['{\"score\": 9}']}\n"
    )
    summary = api.judge_snapshot("all", str(judge), home, limit=3)
    assert summary.verdicts == 0 and summary.unscored == 3
    assert not [r for r in verdicts(home) if r["by"] == "judge:judge-harsh@2"]


def test_critics_scores_are_recorded_on_the_one_scale(tmp_path: Path) -> None:
    spec = RecipeSpec.model_validate(
        {
            "name": "strict-json",
            "version": "1",
            "template": "Give JSON about {{ input }}",
            "output": {"type": "object"},
            "model": "dummy:text",
            # the first answer is not JSON, the critic gives it 7 of 10, the revision is JSON
            "params": {"script": ["not json", 'Weak. {"score": 7}', '{"ok": true}']},
            "refine": {"max_rounds": 2},
        }
    )
    result = api.run_recipe(spec, "kites", home=tmp_path)
    assert result.accepted and result.calls == 3
    store = api.open_store(tmp_path)
    calls = {int(r["step"]): r for r in store.rows("invocations", "kind = 'recipe'")}
    (row,) = store.rows("scores")
    assert row["kind"] == "critic" and row["by"] == "critic:dummy:text"
    assert row["key"] == calls[0]["key"] and row["judge_key"] == calls[1]["key"]
    assert row["score"] == pytest.approx(1 + 4 * 7 / 10) and row["note"] == "7/10"
    api.run_recipe(spec, "kites", home=tmp_path)  # a cache hit writes nothing twice
    assert len(store.rows("scores")) == 1
