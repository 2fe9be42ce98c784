"""Ratings and preferences as records, snapshots filtered by them, and preference datasets
built from them, on a real store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sandloop import api
from sandloop.exports.writer import ExportOptions, export
from sandloop.loops.network.spec import RunSpec
from sandloop.models.registry import load_catalog
from sandloop.scoring import ScoreError
from tests.exports.test_exports import pinned

CATALOG = load_catalog(None)  # the built-in models: all these snapshots use

pytestmark = pytest.mark.usefixtures("prefect_api_url")


def network(seed: int) -> RunSpec:
    return RunSpec.model_validate(
        {
            "network": {"name": "rated", "models": ["dummy:text"]},
            "genesis": "a paper kite",
            "seed": seed,
            "stop": {"max_steps": 4, "stop_on_repeat": False},
        }
    )


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, prefect_api_url: str) -> Path:
    home = tmp_path_factory.mktemp("scores-home")
    for seed in (1, 2):
        api.run_network(network(seed), home)
    return home


def threads(home: Path) -> list[str]:
    return sorted(api.list_runs(home)["thread"])


def record_judgements(home: Path) -> tuple[dict, dict]:
    """Ratings by two people (one re-rated) and a preference given, then reversed."""
    one, two = threads(home)
    first = api.rate(f"{one[:8]}:1", 2, home, by="ada")
    again = api.rate(f"{one[:8]}:1", 5, home, by="ada", note="on reflection")
    assert first["id"] == again["id"]  # the same person re-rating the same step replaces it
    first = again
    api.rate(f"{one[:8]}:2", 3, home, by="ada")
    api.rate(first["key"][:10], 1, home, by="bob")  # by key prefix, another person
    api.rate(f"{two[:8]}:1", 4, home, by="bob")
    api.prefer(f"{two[:8]}:0", f"{one[:8]}:0", home, by="ada")
    swapped = api.prefer(f"{one[:8]}:0", f"{two[:8]}:0", home, by="ada")  # changed their mind
    return first, swapped


def test_ratings_and_preferences_are_keyed_records(home: Path) -> None:
    first, swapped = record_judgements(home)
    scores = api.open_store(home).select("scores")
    assert len(scores) == 5
    ratings = scores[scores["kind"] == "rating"].set_index(["key", "by"])["score"]
    assert ratings[(first["key"], "user:ada")] == 5 and ratings[(first["key"], "user:bob")] == 1
    (pair,) = scores[scores["kind"] == "preference"].to_dict("records")
    assert pair["id"] == swapped["id"] and pair["key"] == swapped["key"]
    assert pair["by"] == "user:ada"


@pytest.mark.parametrize(
    ("ref", "score", "match"),
    [
        ("zz:1", 3, "hexadecimal"),
        ("{one}:x", 3, "is a number"),
        ("{one}:99", 3, "has no step 99"),
        ("{one}:1", 6, "from 1 to 5"),
        ("abc", 3, "8 or more hex"),
        ("ffffffffff", 3, "no step has a key"),
    ],
)
def test_a_bad_rating_is_refused_and_nothing_is_written(
    home: Path, ref: str, score: int, match: str
) -> None:
    one = threads(home)[0]
    before = api.open_store(home).count("scores")
    with pytest.raises(Exception, match=match):
        api.rate(ref.replace("{one}", one[:8]), score, home)
    assert api.open_store(home).count("scores") == before


def test_a_pair_must_answer_the_same_input(home: Path) -> None:
    one, two = threads(home)
    with pytest.raises(ScoreError, match="different inputs"):
        api.prefer(f"{one[:8]}:1", f"{two[:8]}:3", home)
    with pytest.raises(ScoreError, match="two different steps"):
        api.prefer(f"{one[:8]}:1", f"{one[:8]}:1", home)


def test_snapshots_select_by_score_and_exports_carry_human_pairs(
    home: Path, tmp_path: Path
) -> None:
    record_judgements(home)
    one, two = threads(home)
    store = api.open_store(home)
    key_of = {
        (r["thread"], int(r["step"])): r["key"]
        for r in store.rows("invocations", "kind = 'network'")
    }
    # mean ratings: one:1 (5, 1) = 3, one:2 = 3, two:1 = 4
    api.create_snapshot("good", home, min_score=3.5)
    api.create_snapshot("fair", home, min_score=3)
    api.create_snapshot("bobs", home, rated_by="bob")
    api.create_snapshot("all-rated", home)
    with pytest.raises(Exception, match="matches no runs"):
        api.create_snapshot("none", home, min_score=5)

    def exported(name: str, formats: tuple[str, ...] = ("openai-chat",)) -> dict:
        out = tmp_path / name
        return export(pinned(home, name), ExportOptions(formats, out, val_fraction=0.0), CATALOG)

    def chat_inputs(name: str) -> set[str]:
        lines = (tmp_path / name / "openai-chat" / "train.jsonl").read_text().splitlines()
        return {json.loads(line)["messages"][0]["content"] for line in lines}

    inputs = {k: r["input"] for r in store.rows("invocations") for k in [r["key"]]}
    good = exported("good")
    assert chat_inputs("good") == {inputs[key_of[(two, 1)]]}
    assert good["skipped"]["below_score_filter"] == 3  # the other text steps of thread two
    exported("fair")
    assert chat_inputs("fair") == {inputs[key_of[k]] for k in ((one, 1), (one, 2), (two, 1))}
    exported("bobs")
    assert chat_inputs("bobs") == {inputs[key_of[(one, 1)]], inputs[key_of[(two, 1)]]}

    manifest = exported("all-rated", ("openai-dpo", "trl", "hf"))
    assert manifest["pairs"] == {"user:ada": 1}
    out = tmp_path / "all-rated"
    (dpo,) = [json.loads(x) for x in (out / "openai-dpo" / "train.jsonl").read_text().splitlines()]
    outputs = {r["key"]: r["output"] for r in store.rows("invocations")}
    assert dpo["preferred_output"][0]["content"] == outputs[key_of[(one, 0)]]
    assert dpo["non_preferred_output"][0]["content"] == outputs[key_of[(two, 0)]]
    (origin,) = [
        json.loads(x)
        for x in (out / "openai-dpo" / "provenance" / "train.jsonl").read_text().splitlines()
    ]
    assert origin["line"] == 1 and origin["source"] == "user:ada"
    assert origin["key"] == key_of[(one, 0)] and origin["kind"] == "network"
    (trl,) = [
        json.loads(x) for x in (out / "trl" / "preference.train.jsonl").read_text().splitlines()
    ]
    assert trl["source"] == "user:ada" and trl["rejected"] == dpo["non_preferred_output"]
    import datasets

    pairs = datasets.load_dataset(str(out), "preference", split="train")
    assert pairs["source"] == ["user:ada"] and pairs["chosen"] == [dpo["preferred_output"]]
    assert api.export_file_sets(manifest)["openai-dpo"] == "1 train"
    assert "preference_pair_beyond_the_first_per_output" not in manifest["skipped"]
    # A second person's pair for the same output: an example has one rejected side, so the
    # export keeps one pair and counts the other.
    api.prefer(f"{one[:8]}:0", f"{two[:8]}:0", home, by="bob")
    api.create_snapshot("two-pairs", home)
    manifest = exported("two-pairs", ("openai-dpo",))
    assert sum(manifest["pairs"].values()) == 1
    assert manifest["skipped"]["preference_pair_beyond_the_first_per_output"] == 1
