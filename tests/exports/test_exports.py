"""Snapshots and exports end to end on a store with every kind of record."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from sandloop import api
from sandloop.exports import snapshot as snapshots
from sandloop.exports import writer
from sandloop.exports.langfuse import run_events
from sandloop.exports.writer import ExportError, ExportOptions, export
from sandloop.loops.dialogue.spec import DialogueSpec
from sandloop.loops.network.spec import RunSpec
from sandloop.models.registry import load_catalog
from sandloop.storage.store import sql_str

CATALOG = load_catalog(None)  # the built-in models: all these snapshots use

pytestmark = pytest.mark.usefixtures("prefect_api_url")
ALL = ("openai-chat", "openai-dpo", "trl", "sharegpt", "alpaca", "hf")
EMAIL = "ada@example.org"


def network(name: str, genesis: str, steps: int = 6) -> RunSpec:
    return RunSpec.model_validate(
        {
            "network": {"name": name, "models": ["dummy:text"]},
            "genesis": genesis,
            "seed": 1,
            "stop": {"max_steps": steps, "stop_on_repeat": False},
        }
    )


@pytest.fixture(scope="module")
def store_home(tmp_path_factory: pytest.TempPathFactory, prefect_api_url: str) -> Path:
    home = tmp_path_factory.mktemp("export-home")
    folder = tmp_path_factory.mktemp("recipes")
    api.run_network(network("words", f"write to {EMAIL} about kites"), home)
    api.run_dialogue(
        DialogueSpec.model_validate(
            {
                "name": "chat",
                "question": "Why loops?",
                "actors": [
                    {
                        "name": "A",
                        "model": "dummy:text",
                        "params": {"script": ["Because.", "Again?"]},
                    },
                    {
                        "name": "B",
                        "model": "dummy:text",
                        "params": {"script": ["Why not.", "Yes."]},
                    },
                ],
                "stop": {"max_turns": 4},
            }
        ),
        seed=1,
        home=home,
    )
    refined = folder / "refined.yaml"
    refined.write_text(
        yaml.safe_dump(
            {
                "name": "refined",
                "version": "1",
                "template": "Answer {{ input }}",
                "model": "dummy:text",
                "params": {"script": ["bad answer", "score: 2", '{"answer": 42}']},
                "output": {"type": "object", "required": ["answer"]},
                "refine": {"max_rounds": 1},
            }
        )
    )
    api.run_recipe(str(refined), "the question", seed=1, home=home)
    return home


@pytest.fixture(scope="module")
def snapshot_all(store_home: Path) -> dict[str, Any]:
    return api.create_snapshot("all", store_home)


def pinned(home: Path, name: str = "all") -> snapshots.Pinned:
    store = api.open_store(home)
    row = snapshots.get(store, name)
    assert row is not None
    return snapshots.Pinned(store, row)


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def every_record(out: Path, fmt: str) -> list[dict[str, Any]]:
    return [r for f in sorted((out / fmt).glob("*.jsonl")) for r in lines(f)]


def test_every_format_maps_every_kind(store_home: Path, snapshot_all: dict, tmp_path: Path) -> None:
    manifest = export(
        pinned(store_home), ExportOptions(ALL, tmp_path / "out", val_fraction=0.2), CATALOG
    )
    out = tmp_path / "out"
    total = sum(manifest["counts"][s]["examples"] for s in ("train", "validation"))
    kinds = {k: 0 for k in ("network", "dialogue", "recipe")}
    for split in manifest["counts"].values():
        for kind, n in split["by_kind"].items():
            kinds[kind] += n
    assert kinds == {"network": 6, "dialogue": 2, "recipe": 1} and total == 9
    chats = every_record(out, "openai-chat")
    dialogue = next(r for r in chats if r["messages"][0]["content"] == "Why loops?")
    assert dialogue["messages"][-1] == {"role": "assistant", "content": "Again?"}
    assert [m["role"] for m in dialogue["messages"]] == ["user", "assistant", "user", "assistant"]
    recipe = next(r for r in chats if r["messages"][0]["content"] == "Answer the question")
    assert recipe["messages"][1]["content"] == '{"answer": 42}'
    dpo = every_record(out, "openai-dpo")
    assert dpo == [
        {
            "input": {"messages": [{"role": "user", "content": "Answer the question"}]},
            "preferred_output": [{"role": "assistant", "content": '{"answer": 42}'}],
            "non_preferred_output": [{"role": "assistant", "content": "bad answer"}],
        }
    ]
    origins = [r for f in sorted((out / "openai-dpo" / "provenance").glob("*")) for r in lines(f)]
    assert [(o["line"], o["kind"], o["source"]) for o in origins] == [(1, "recipe", "refine")]
    preference = [r for f in (out / "trl").glob("preference.*") for r in lines(f)]
    assert preference[0]["chosen"] == dpo[0]["preferred_output"]
    assert {r["conversations"][-1]["from"] for r in every_record(out, "sharegpt")} == {"gpt"}
    assert all(r["instruction"] and r["output"] for r in every_record(out, "alpaca"))
    import datasets

    sft = datasets.load_dataset(str(out), "sft")  # a split with no examples has no file
    assert sum(split.num_rows for split in sft.values()) == 9
    assert set(sft["train"]["kind"]) <= {"network", "dialogue", "recipe"}
    pairs = datasets.load_dataset(str(out), "preference")
    (pair,) = [row for split in pairs.values() for row in split]
    assert pair["chosen"] == dpo[0]["preferred_output"] and pair["kind"] == "recipe"
    assert pair["rejected"] == dpo[0]["non_preferred_output"]
    assert manifest["records"].get("hf/preference/train", 0) + manifest["records"].get(
        "hf/preference/validation", 0
    ) == len(dpo)


def test_exports_are_byte_identical_however_they_are_chunked(
    store_home: Path, snapshot_all: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = export(
        pinned(store_home), ExportOptions(ALL, tmp_path / "a", val_fraction=0.5), CATALOG
    )
    monkeypatch.setattr(writer, "RANGE_ROWS", 1)  # 16 key ranges instead of one
    second = export(
        pinned(store_home), ExportOptions(ALL, tmp_path / "b", val_fraction=0.5), CATALOG
    )
    assert first["files"] == second["files"] and len(first["files"]) >= 14
    for name, described in first["files"].items():
        data = (tmp_path / "b" / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == described["sha256"]
    assert (tmp_path / "a" / "manifest.json").read_bytes() == (
        tmp_path / "b" / "manifest.json"
    ).read_bytes()


def test_a_snapshot_reads_what_was_there_when_it_was_taken(
    store_home: Path, snapshot_all: dict, tmp_path: Path
) -> None:
    before = export(
        pinned(store_home), ExportOptions(("openai-chat",), tmp_path / "before"), CATALOG
    )
    api.run_network(network("later", "written after the snapshot", 3), store_home)
    after = export(pinned(store_home), ExportOptions(("openai-chat",), tmp_path / "after"), CATALOG)
    assert before["files"] == after["files"]
    assert api.open_store(store_home).count("runs") > snapshot_all["threads"]


def test_secrets_and_emails_are_redacted_everywhere(
    store_home: Path, snapshot_all: dict, tmp_path: Path
) -> None:
    manifest = export(
        pinned(store_home), ExportOptions(ALL, tmp_path / "out", redact=(r"about kites",)), CATALOG
    )
    written = b"".join(p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert EMAIL.encode() not in written and b"about kites" not in written
    assert manifest["redactions"] == {"custom_1": 1, "email": 1}


def test_token_statistics_and_validation_are_in_the_manifest(
    store_home: Path, snapshot_all: dict, tmp_path: Path
) -> None:
    manifest = export(
        pinned(store_home), ExportOptions(("openai-chat",), tmp_path / "out"), CATALOG
    )
    stats = manifest["tokens"]["train"]
    assert manifest["tokens"]["tokenizer"] == "cl100k_base"
    assert stats["sampled"] == stats["examples"] and 0 < stats["p50"] <= stats["max"]
    assert all(s.endswith("no problems") for s in manifest["validation"].values())


def test_an_invalid_dataset_is_refused_and_nothing_is_left(
    store_home: Path, snapshot_all: dict, tmp_path: Path
) -> None:
    with pytest.raises(
        ExportError, match=r"failed its checks, nothing was written.*over_token_limit"
    ):
        export(
            pinned(store_home),
            ExportOptions(("openai-chat",), tmp_path / "out", max_tokens=5),
            CATALOG,
        )
    assert list(tmp_path.iterdir()) == []
    export(
        pinned(store_home),
        ExportOptions(("openai-chat",), tmp_path / "out", max_tokens=5, allow_invalid=True),
        CATALOG,
    )
    assert (tmp_path / "out" / "manifest.json").exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"formats": ("csv",)}, "unknown format csv"),
        ({"val_fraction": 1.5}, "val-fraction"),
        ({"dedupe": "fuzzy"}, "none, exact or near"),
    ],
)
def test_bad_options_are_one_line(tmp_path: Path, options: dict, message: str) -> None:
    with pytest.raises(ExportError, match=message):
        ExportOptions(**{"formats": ("openai-chat",), "out": tmp_path / "o", **options}).check()


def test_a_non_empty_folder_needs_overwrite(tmp_path: Path) -> None:
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "keep.txt").write_text("mine")
    with pytest.raises(ExportError, match="pass --overwrite"):
        ExportOptions(("openai-chat",), tmp_path / "o").check()


def test_snapshot_selection_errors(store_home: Path, snapshot_all: dict) -> None:
    store = api.open_store(store_home)
    with pytest.raises(snapshots.SnapshotError, match="matches no runs"):
        snapshots.create(store, "none", snapshots.Selection(realm="ffff"))
    with pytest.raises(snapshots.SnapshotError, match="exists"):
        snapshots.create(store, "all", snapshots.Selection())
    with pytest.raises(snapshots.SnapshotError, match="no snapshot 'nope'"):
        snapshots.get(store, "nope")
    only = snapshots.create(store, "dialogues", snapshots.Selection(kind=["dialogue"]))
    assert only["threads"] == 1


def test_a_snapshot_whose_versions_were_cleaned_up_says_so(tmp_path: Path) -> None:
    from datetime import timedelta

    home = tmp_path / "h"
    api.run_network(network("gone", "x", 2), home)
    store = api.open_store(home)
    snapshots.create(store, "old", snapshots.Selection())
    api.run_network(network("more", "y", 2), home)
    for name in snapshots.PINNED_TABLES:
        store.table(name).tags.delete(snapshots.tag_for("old"))
    store.compact(cleanup_older_than=timedelta(0))
    with pytest.raises(snapshots.SnapshotError, match="is gone"):
        export(pinned(home, "old"), ExportOptions(("openai-chat",), tmp_path / "out"), CATALOG)


def test_near_duplicates_go_and_validation_lookalikes_leave_train(tmp_path: Path) -> None:
    from sandloop.embedding.embedders import get_embedder
    from sandloop.embedding.service import embed_and_index

    home = tmp_path / "h"
    for i, genesis in enumerate(
        ["red kite high", "high kite red", "blue boat low", "low boat blue"]
    ):
        api.run_network(network(f"n{i}", genesis, 1), home)
    embed_and_index(api.open_store(home), get_embedder("hashing"))
    store = api.open_store(home)
    snapshots.create(store, "near", snapshots.Selection())
    # An example stands for its output's vector. At threshold 0 every pair is "near"; just
    # below 1 only identical bags of words would be.
    manifest = export(
        pinned(home, "near"),
        ExportOptions(
            ("openai-chat",), tmp_path / "out", dedupe="near", near_threshold=0.0, val_fraction=0.0
        ),
        CATALOG,
    )
    assert manifest["counts"]["train"]["examples"] == 1  # threshold 0: everything is "near"
    assert manifest["dedupe"]["near_train"] == 3 and manifest["options"]["embedding_model"]
    strict = export(
        pinned(home, "near"),
        ExportOptions(
            ("openai-chat",),
            tmp_path / "out2",
            dedupe="near",
            near_threshold=0.9999,
            val_fraction=0.5,
        ),
        CATALOG,
    )
    kept = strict["counts"]["train"]["examples"] + strict["counts"]["validation"]["examples"]
    assert kept + sum(strict["dedupe"].values()) == 4


def test_langfuse_events_are_what_the_sdk_reads(store_home: Path, snapshot_all: dict) -> None:
    """Every event parses with the langfuse SDK's own ingestion models, with no field the model
    does not know (they allow extras, so an unknown field would pass unnoticed), and every id
    is a UUID derived from the record: the same on a second export."""
    import uuid

    from langfuse.api.core.pydantic_utilities import parse_obj_as
    from langfuse.api.ingestion.types import IngestionEvent

    store = api.open_store(store_home)
    runs = store.runs()
    events = [
        e
        for run in runs.to_dict("records")
        for e in run_events(run, store.select("invocations", f"thread = {sql_str(run['thread'])}"))
    ]
    by_type: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        parsed = parse_obj_as(IngestionEvent, event)
        assert not parsed.model_extra and not parsed.body.model_extra, event
        for value in (event["id"], event["body"]["id"], event["body"].get("traceId")):
            assert value is None or str(uuid.UUID(value)) == value
        by_type.setdefault(event["type"], []).append(event["body"])
    assert set(by_type) == {"trace-create", "span-create", "generation-create"}
    assert len(by_type["trace-create"]) == len(runs)
    calls = sum(store.count("invocations", f"thread = {sql_str(t)}") for t in runs["thread"])
    assert len(by_type["generation-create"]) == calls
    recipe = [b for b in by_type["generation-create"] if b.get("promptName") == "refined"]
    assert recipe and all(b["promptVersion"] == 1 and b["model"] == "dummy:text" for b in recipe)
    assert len({e["id"] for e in events}) == len(events)
    again = [
        e["id"]
        for run in runs.to_dict("records")
        for e in run_events(run, store.select("invocations", f"thread = {sql_str(run['thread'])}"))
    ]
    assert again == [e["id"] for e in events]
    traced = {b["metadata"]["thread"] for b in by_type["trace-create"]}
    assert traced == set(runs["thread"])


def test_the_column_wise_path_writes_what_orjson_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Network exchanges are written column-wise; quotes, backslashes, tabs, newlines and
    unicode must come out byte for byte as row-by-row orjson writes them, and a bucket with a
    rarer control character falls back to orjson."""
    home = tmp_path / "h"
    for i, genesis in enumerate(
        ['say "hi"\tthen\\leave\r\nnow', "naïve café — 東京 🎈", "bell \x01 rings", "plain"]
    ):
        api.run_network(network(f"odd{i}", genesis, 3), home)
    snapshots.create(api.open_store(home), "odd", snapshots.Selection())
    formats = ("openai-chat", "sharegpt", "hf")
    monkeypatch.setattr(writer, "RANGE_ROWS", 1)  # many buckets: the odd one goes row by row
    columnar_buckets: list[int] = []
    write_columnar = writer._write_columnar

    def counting(rows: Any, *args: Any) -> int:
        columnar_buckets.append(len(rows))
        return write_columnar(rows, *args)

    monkeypatch.setattr(writer, "_write_columnar", counting)
    fast = export(
        pinned(home, "odd"), ExportOptions(formats, tmp_path / "fast", val_fraction=0.3), CATALOG
    )
    assert 0 < sum(columnar_buckets) < 12  # most rows column-wise, the \x01 bucket not
    monkeypatch.setattr(writer, "COLUMNAR", False)
    slow = export(
        pinned(home, "odd"), ExportOptions(formats, tmp_path / "slow", val_fraction=0.3), CATALOG
    )
    assert fast == slow
    chat = every_record(tmp_path / "fast", "openai-chat")
    assert {m["content"] for r in chat for m in r["messages"]} >= {
        'say "hi"\tthen\\leave\r\nnow',
        "naïve café — 東京 🎈",
        "bell \x01 rings",
    }


def test_column_wise_sampling_and_hashes_agree_with_the_row_by_row_ones() -> None:
    """The columnar path picks the token sample and de-duplication digests from whole
    columns; a row written by either path must be sampled and matched alike."""
    import pyarrow as pa

    from sandloop.exports.examples import messages_hash
    from sandloop.hashing import hash_value

    keys = [hash_value(("k", i)) for i in range(5_000)]
    column = pa.chunked_array([keys[:1234], keys[1234:]])
    assert writer._token_sample_rows(column, writer.EXACT_TOKENS) == list(range(5_000))  # all
    total = 7 * writer.EXACT_TOKENS  # past the exact limit: one key in 35
    picked = writer._token_sample_rows(column, total)
    assert picked == [i for i, k in enumerate(keys) if writer._in_token_sample(k, total)]
    assert 90 < len(picked) < 200  # ~143 of 5,000
    texts = [("hi", "there"), ('a "q"\n', "東京 🎈"), ("", ""), ("hi", "there")]
    rows = pa.table({"input": [t[0] for t in texts], "output": [t[1] for t in texts]})
    assert writer._exchange_hashes(rows) == [
        messages_hash(({"role": "user", "content": i}, {"role": "assistant", "content": o}))
        for i, o in texts
    ]


@pytest.mark.slow
def test_every_format_loads_and_trains_under_any_hash_seed(
    store_home: Path, snapshot_all: dict, tmp_path: Path
) -> None:
    """TRL reads each conversational file set as conversational, templates it, and trains SFT
    and DPO steps on it, whichever key its set order happens to pick first."""
    import os
    import subprocess
    import sys

    from tests.tiny_models import build_tiny_chat_gpt2

    out = tmp_path / "out"
    export(pinned(store_home), ExportOptions(ALL, out, val_fraction=0.0), CATALOG)
    model = build_tiny_chat_gpt2(tmp_path / "model")
    root = Path(__file__).resolve().parents[2]
    for seed in ("0", "1"):
        done = subprocess.run(
            [sys.executable, "-m", "tests.exports.trainers", str(out), str(model)],
            cwd=root,
            env={**os.environ, "PYTHONHASHSEED": seed, "HF_DATASETS_OFFLINE": "1"},
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        found = json.loads(done.stdout.strip().splitlines()[-1])
        assert found["rows"] == {
            "sft": 9,
            "preference": 1,
            "openai-chat": 9,
            "trl-messages": 9,
            "trl-prompt_completion": 9,
            "trl-preference": 1,
            "sharegpt": 9,
        }
        assert all(loss > 0 for loss in found["losses"].values()), found


def test_the_card_has_hub_metadata_that_loads_without_a_warning(
    store_home: Path, snapshot_all: dict, tmp_path: Path
) -> None:
    import warnings

    from huggingface_hub import DatasetCard

    out = tmp_path / "out"
    manifest = export(pinned(store_home), ExportOptions(ALL, out, license="cc-by-4.0"), CATALOG)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = DatasetCard.load(out / "README.md").data.to_dict()
    assert data["license"] == "cc-by-4.0" and data["size_categories"] == ["n<1K"]
    assert data.get("language", []) == manifest["language"]["codes"]  # detected, if sure
    assert data["sandloop"]["snapshot"] == "all"
    assert data["sandloop"]["table_versions"] == manifest["snapshot"]["table_versions"]
    named = {c["config_name"]: c for c in data["configs"]}
    assert set(named) == {"sft", "preference"} and named["sft"].get("default") is True
    listed = {f["path"] for c in data["configs"] for f in c["data_files"]}
    assert listed == {f for f in manifest["files"] if f.startswith("hf/")}
    assert all((out / path).is_file() for path in listed)


def test_the_cards_language_is_the_given_one_and_a_bad_code_writes_nothing(
    store_home: Path, snapshot_all: dict, tmp_path: Path
) -> None:
    """Issue 37, item 14: the card had no `language`."""
    from huggingface_hub import DatasetCard

    out = tmp_path / "out"
    options = ExportOptions(("trl",), out, language=("fr", "pt-BR"))
    manifest = export(pinned(store_home), options, CATALOG)
    assert DatasetCard.load(out / "README.md").data.to_dict()["language"] == ["fr", "pt-BR"]
    assert manifest["language"] == {"codes": ["fr", "pt-BR"], "how": "given"}
    assert "- language: fr, pt-BR (given)" in (out / "README.md").read_text()
    with pytest.raises(ExportError, match="give a language code"):
        export(
            pinned(store_home),
            ExportOptions(("trl",), tmp_path / "bad", language=("../x",)),
            CATALOG,
        )
    assert not (tmp_path / "bad").exists()


def test_a_prompt_version_langfuse_cannot_hold_is_kept_in_metadata() -> None:
    import pandas as pd

    run = {
        "thread": "ab" * 16,
        "kind": "recipe",
        "name": "never",
        "realm": "cd" * 16,
        "status": "completed",
        "steps": 1,
        "seed": 1,
        "created_at": pd.Timestamp("2026-12-01", tz="UTC"),
    }
    calls = pd.DataFrame(
        [
            {
                "key": f"{version}0" * 16,
                "step": step,
                "facet": "generate",
                "model": "dummy:text",
                "params": "{}",
                "input": "q",
                "output": "a",
                "status": "ok",
                "error": None,
                "seed": 1,
                "flow_run_id": None,
                "started_at": pd.Timestamp("2026-12-01", tz="UTC"),
                "finished_at": pd.Timestamp("2026-12-01", tz="UTC"),
                "metadata": json.dumps({"promptName": "never", "promptVersion": version}),
            }
            for step, version in enumerate(["1.3", "2"])
        ]
    )
    generations = [e["body"] for e in run_events(run, calls) if e["type"] == "generation-create"]
    assert "promptVersion" not in generations[0]
    assert generations[0]["metadata"]["prompt_version"] == "1.3"
    assert (
        generations[1]["promptVersion"] == 2 and "prompt_version" not in generations[1]["metadata"]
    )


def test_a_card_without_hf_lists_the_jsonl_file_sets_that_load(tmp_path: Path) -> None:
    from sandloop.exports.card import configs

    files = ["openai-chat/train.jsonl", "openai-chat/validation.jsonl", "trl/messages.train.jsonl"]
    listed = configs([*files, "sharegpt/train.jsonl.zst", "manifest.json"])
    assert [c["config_name"] for c in listed] == ["openai-chat", "trl-messages"]
    assert listed[0]["default"] is True
    assert listed[0]["data_files"] == [
        {"split": "train", "path": "openai-chat/train.jsonl"},
        {"split": "validation", "path": "openai-chat/validation.jsonl"},
    ]


@pytest.fixture(scope="module")
def twins_home(tmp_path_factory: pytest.TempPathFactory, prefect_api_url: str) -> Path:
    """Four prompts, each run on two seeds, and one also a dialogue's question on two seeds:
    the answers differ, the prompts repeat."""
    home = tmp_path_factory.mktemp("twins-home")
    for n in range(4):
        genesis = f"prompt number {n}: a lighthouse"
        for seed in (1, 2):
            spec = network("twins", genesis, steps=2).model_copy(update={"seed": seed})
            api.run_network(spec, home)
            if n == 0:
                dialogue = DialogueSpec.model_validate(
                    {
                        "name": "asked",
                        "question": genesis,
                        "actors": [{"name": "A", "model": "dummy:text"}],
                        "stop": {"max_turns": 1},
                    }
                )
                api.run_dialogue(dialogue, seed=seed, home=home)
    api.create_snapshot("twins", home)
    return home


def prompts_by_split(out: Path) -> dict[str, set[str]]:
    return {
        split: {
            m["content"]
            for r in lines(out / "openai-chat" / f"{split}.jsonl")
            for m in r["messages"]
            if m["role"] == "user"
        }
        for split in ("train", "validation")
    }


@pytest.mark.slow  # ~15 s of runs: make test keeps its margin
def test_no_prompt_is_on_both_sides_of_the_split(twins_home: Path, tmp_path: Path) -> None:
    manifest = export(
        pinned(twins_home, "twins"),
        ExportOptions(("openai-chat", "hf"), tmp_path / "out", val_fraction=0.5, dedupe="none"),
        CATALOG,
    )
    sides = prompts_by_split(tmp_path / "out")
    assert sides["train"] and sides["validation"]  # both sides hold examples
    assert not sides["train"] & sides["validation"]
    assert manifest["options"]["split"].startswith("by group")
    assert "no prompt is on both sides" in (tmp_path / "out" / "README.md").read_text()
    again = export(
        pinned(twins_home, "twins"),
        ExportOptions(("openai-chat", "hf"), tmp_path / "again", val_fraction=0.5, dedupe="none"),
        CATALOG,
    )
    assert again["files"] == manifest["files"]  # the same groups, the same bytes


@pytest.mark.slow  # ~15 s of runs: make test keeps its margin
def test_an_openai_chat_export_has_one_schema_across_its_files(
    store_home: Path, snapshot_all: dict, twins_home: Path, tmp_path: Path
) -> None:
    import datasets

    for home, name in ((store_home, "all"), (twins_home, "twins")):
        out = tmp_path / name
        export(pinned(home, name), ExportOptions(("openai-chat",), out, val_fraction=0.5), CATALOG)
        files = sorted((out / "openai-chat").glob("*.jsonl"))
        assert len(files) == 2
        parts = [datasets.load_dataset("json", data_files=str(f), split="train") for f in files]
        assert parts[0].features == parts[1].features, name
        joined = datasets.concatenate_datasets(parts)
        assert joined.num_rows == sum(p.num_rows for p in parts)


def test_export_validate_passes_sandloops_own_dpo_export(
    store_home: Path, snapshot_all: dict, tmp_path: Path
) -> None:
    """Issue 37, item 19: the provenance lines beside openai-dpo's pairs are not DPO data."""
    out = tmp_path / "dpo"
    export(pinned(store_home), ExportOptions(("openai-dpo",), out, val_fraction=0.0), CATALOG)
    assert list((out / "openai-dpo" / "provenance").glob("*.jsonl"))
    reports = api.validate_export(out)
    assert reports and all("provenance" not in name for name in reports)
    assert all(report.ok for report in reports.values()), reports


def test_a_format_that_writes_nothing_is_named_with_why(
    store_home: Path, snapshot_all: dict, tmp_path: Path
) -> None:
    """Issue 37, item 18: openai-dpo with no preference pairs wrote nothing and said nothing."""
    if snapshots.get(api.open_store(store_home), "words-only", missing_ok=True) is None:
        api.create_snapshot("words-only", store_home, kind=["network"])
    manifest = export(
        pinned(store_home, "words-only"),
        ExportOptions(("openai-chat", "openai-dpo"), tmp_path / "out", val_fraction=0.0),
        CATALOG,
    )
    assert api.empty_formats(manifest) == {"openai-dpo": api.EMPTY_FORMAT_REASONS["openai-dpo"]}
    full = export(pinned(store_home), ExportOptions(ALL, tmp_path / "all"), CATALOG)
    assert api.empty_formats(full) == {}


def test_the_cards_default_config_trains_in_trl_and_its_tasks_are_in_its_files() -> None:
    """Issue 37, item 14: alpaca (which TRL does not read) was the default of an export
    without hf, and an export without hf listed text-to-image among its tasks."""
    from sandloop.exports.card import configs, task_categories

    files = ["alpaca/train.jsonl", "sharegpt/train.jsonl", "trl/messages.train.jsonl"]
    listed = configs(files)
    assert [c["config_name"] for c in listed if c.get("default")] == ["trl-messages"]
    only_text = {"files": {"openai-chat/train.jsonl": {}, "trl/messages.train.jsonl": {}}}
    assert task_categories(only_text) == ["text-generation"]
    with_images = {"files": {"hf/vision/train-00000-of-00001.parquet": {}, "hf/sft/x": {}}}
    assert task_categories(with_images) == ["image-to-text", "text-generation"]
