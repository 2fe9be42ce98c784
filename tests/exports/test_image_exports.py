"""Image exchanges exported for training: image→text steps as vision SFT (OpenAI's data-URL
content parts, the hf `vision` config with a `datasets` Image column), text→image steps as
(prompt, image) pairs, each kind in its own config of a mixed snapshot. On a real store, read
back with `datasets`, `huggingface_hub` and TRL's own data utilities."""

from __future__ import annotations

import base64
import json
import warnings
from pathlib import Path
from typing import Any

import pytest

from sandloop import api
from sandloop.exports.validate import Report, check
from sandloop.exports.writer import ExportOptions, export
from sandloop.loops.network.spec import RunSpec
from sandloop.models.registry import load_catalog
from tests.exports.test_exports import lines, pinned

CATALOG = load_catalog(None)  # the built-in models: all these snapshots use

pytestmark = pytest.mark.usefixtures("prefect_api_url")

PANIC = {"name": "panic", "models": ["dummy:text-to-image", "dummy:image-to-text"]}
TEXT = {"name": "words", "models": ["dummy:text"]}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, prefect_api_url: str) -> Path:
    home = tmp_path_factory.mktemp("image-home")
    for network, seed in ((PANIC, 1), (PANIC, 2), (TEXT, 1)):
        spec = {
            "network": network,
            "genesis": "a red balloon",
            "seed": seed,
            "stop": {"max_steps": 6, "stop_on_repeat": False},
        }
        api.run_network(RunSpec.model_validate(spec), home)
    api.create_snapshot("all", home)
    return home


@pytest.fixture(scope="module")
def exported(home: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("image-export") / "out"
    formats = ("openai-chat", "hf", "trl")
    manifest = export(
        pinned(home), ExportOptions(formats, out, val_fraction=0.0, dedupe="none"), CATALOG
    )
    return out, manifest


def steps(home: Path, input_type: str, output_type: str) -> dict[str, dict[str, Any]]:
    where = f"input_type = '{input_type}' AND output_type = '{output_type}'"
    return {r["key"]: r for r in api.open_store(home).rows("invocations", where)}


def test_captions_are_openai_vision_examples_with_the_recorded_image(
    home: Path, exported: tuple[Path, dict]
) -> None:
    out, manifest = exported
    captions = steps(home, "image", "text")
    blobs = api.open_store(home).blobs
    records = lines(out / "openai-chat" / "vision.train.jsonl")
    assert len(records) == len(captions) == manifest["counts"]["train"]["by_kind"]["vision"]
    by_caption = {r["output"]: r for r in captions.values()}
    for record in records:
        user, answer = record["messages"]
        (part,) = user["content"]
        header, data = part["image_url"]["url"].split(",", 1)
        assert user["role"] == "user" and part["type"] == "image_url"
        assert header == "data:image/png;base64"
        step = by_caption[answer["content"]]
        assert base64.b64decode(data) == blobs.get(step["input"])
    # the text steps keep their own file, and the text-only formats say what they left out
    assert len(lines(out / "openai-chat" / "train.jsonl")) == 6
    drawn = len(steps(home, "text", "image"))  # (prompt, image) pairs: hf's alone
    assert manifest["skipped"]["image_exchange_not_in:trl"] == drawn
    assert manifest["skipped"]["image_exchange_not_in:openai-chat"] == drawn
    assert manifest["validation"]["openai-chat/vision/train"].endswith("no problems")


def test_each_kind_is_its_own_hf_config_with_images_datasets_decodes(
    home: Path, exported: tuple[Path, dict]
) -> None:
    import datasets
    from huggingface_hub import DatasetCard
    from trl.data_utils import is_conversational

    out, manifest = exported
    blobs = api.open_store(home).blobs
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        card = DatasetCard.load(out / "README.md")
    names = [c["config_name"] for c in card.data["configs"]]
    assert names == ["sft", "text-to-image", "vision"]
    assert card.data["task_categories"] == ["image-to-text", "text-generation", "text-to-image"]

    vision = datasets.load_dataset(str(out), "vision", split="train")
    assert isinstance(vision.features["images"].feature, datasets.Image)
    captions = {r["output"]: r for r in steps(home, "image", "text").values()}
    assert len(vision) == len(captions)
    for row in vision:
        assert is_conversational(row)
        user, answer = row["messages"]
        assert [p["type"] for p in user["content"]] == ["image"]
        caption = answer["content"][0]["text"]
        (image,) = row["images"]
        recorded = blobs.get(captions[caption]["input"])
        assert image.size == (32, 32) and image.tobytes() == _pixels(recorded)

    drawn = datasets.load_dataset(str(out), "text-to-image", split="train")
    assert isinstance(drawn.features["image"], datasets.Image)
    prompts = steps(home, "text", "image")
    assert sorted(drawn["key"]) == sorted(prompts)
    for row in drawn:
        step = prompts[row["key"]]
        assert row["prompt"] == step["input"]
        assert row["image"].tobytes() == _pixels(blobs.get(step["output"]))
    sft = datasets.load_dataset(str(out), "sft", split="train")
    assert len(sft) == 6 and set(sft["kind"]) == {"network"}
    assert manifest["records"]["hf/vision/train"] == len(captions)


def test_trl_has_a_vision_file_whose_images_decode_as_images(
    home: Path, exported: tuple[Path, dict]
) -> None:
    """Issue 37, item 15: the trl format gave TRL no `images` column, so a vision-language
    model trained on openai-chat's vision file saw no image. trl now writes
    `vision.SPLIT.parquet` (JSON cannot carry an image as an image), the rows of hf's
    `vision` config, which `export validate` checks and `datasets` decodes."""
    import datasets
    from trl.data_utils import is_conversational

    out, manifest = exported
    path = out / "trl" / "vision.train.parquet"
    trl_vision = datasets.load_dataset("parquet", data_files=str(path), split="train")
    assert isinstance(trl_vision.features["images"].feature, datasets.Image)
    hf_vision = datasets.load_dataset(str(out), "vision", split="train")
    assert trl_vision.features == hf_vision.features
    assert sorted(trl_vision["key"]) == sorted(steps(home, "image", "text"))
    by_key = {row["key"]: row for row in hf_vision}
    for row in trl_vision:
        assert is_conversational(row)
        twin = by_key[row["key"]]
        assert row["messages"] == twin["messages"]
        assert row["images"][0].tobytes() == twin["images"][0].tobytes()
    assert manifest["records"]["trl/vision/train"] == len(trl_vision)
    assert manifest["validation"]["trl/vision/train"].endswith("no problems")
    assert "trl/vision.train.parquet" in manifest["files"]
    checked = api.validate_export(out / "trl")
    assert checked[str(path)].examples == len(trl_vision) and not checked[str(path)].problems


def _pixels(png: bytes) -> bytes:
    import io

    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        return image.convert("RGB").tobytes()


def test_only_image_steps_still_make_a_dataset_in_the_formats_that_carry_them(
    tmp_path: Path,
) -> None:
    spec = {"network": PANIC, "genesis": "a kite", "seed": 3, "stop": {"max_steps": 4}}
    api.run_network(RunSpec.model_validate(spec), tmp_path / "home")
    api.create_snapshot("panic", tmp_path / "home")
    manifest = export(
        pinned(tmp_path / "home", "panic"),
        ExportOptions(("hf",), tmp_path / "out", val_fraction=0.5),
        CATALOG,
    )
    kinds = {k for s in ("train", "validation") for k in manifest["counts"][s]["by_kind"]}
    assert kinds == {"vision", "text-to-image"}
    with pytest.raises(Exception, match="no usable examples"):
        export(
            pinned(tmp_path / "home", "panic"),
            ExportOptions(("sharegpt",), tmp_path / "text-only", val_fraction=0.0),
            CATALOG,
        )


def _png() -> str:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (2, 2), (9, 9, 9)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def _gif() -> str:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (2, 2)).save(buffer, format="GIF")
    return base64.b64encode(buffer.getvalue()).decode()


def _vision(part: dict[str, Any], role: str = "user") -> dict[str, Any]:
    return {"messages": [{"role": role, "content": [part]}, {"role": "assistant", "content": "x"}]}


def _image(url: str, **extra: Any) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url, **extra}}


@pytest.mark.parametrize(
    ("record", "problem"),
    [
        (_vision(_image(f"data:image/png;base64,{_png()}")), None),
        (_vision(_image("https://example.org/kite.jpg", detail="low")), None),
        (_vision({"type": "text", "text": "what is this?"}), None),
        (_vision(_image(f"data:image/png;base64,{_png()}"), role="assistant"), "image_not_in_user"),
        (_vision(_image(f"data:image/gif;base64,{_gif()}")), "image_type_not_jpeg_png_or_webp"),
        (_vision(_image(f"data:image/jpeg;base64,{_png()}")), "image_type_not_jpeg_png_or_webp"),
        (_vision(_image("data:image/png;base64,@@@")), "image_data_url_not_base64"),
        (_vision(_image("ftp://example.org/x.png")), "image_url_malformed"),
        (_vision(_image(f"data:image/png;base64,{_png()}", detail="max")), "image_detail_unknown"),
        (_vision({"type": "audio", "data": "x"}), "unrecognized_content_part"),
        (_vision({"type": "text", "text": " "}), "empty_text_part"),
    ],
)
def test_openai_checks_cover_image_content_parts(record: dict, problem: str | None) -> None:
    report = Report()
    check("openai-chat", "vision", json.loads(json.dumps(record)), report, 1, 65_536)
    assert [p for p in report.problems if problem and p.startswith(problem)] or (
        problem is None and report.ok
    ), report.problems


def test_hf_image_checks_pair_placeholders_with_images() -> None:
    png = {"bytes": base64.b64decode(_png()), "path": None}
    good = {
        "messages": [
            {"role": "user", "content": [{"type": "image", "text": None}]},
            {"role": "assistant", "content": [{"type": "text", "text": "grey"}]},
        ],
        "images": [png],
    }
    for record, problem in (
        (good, None),
        ({**good, "images": [png, png]}, "hf_vision_image_count"),
        ({**good, "images": [{"bytes": b"not an image", "path": None}]}, "hf_vision_images"),
        ({"prompt": "a kite", "image": png}, None),
        ({"prompt": " ", "image": png}, "hf_text-to-image_prompt"),
    ):
        report = Report()
        part = "text-to-image" if "prompt" in record else "vision"
        check("hf", part, record, report, 1, 65_536)
        assert list(report.problems) == ([problem] if problem else []), report.problems


def test_a_gif_caption_is_left_out_of_openai_chat_and_kept_in_hf(tmp_path: Path) -> None:
    spec = {"network": PANIC, "genesis": "a kite", "seed": 5, "stop": {"max_steps": 2}}
    api.run_network(RunSpec.model_validate(spec), tmp_path / "home")
    store = api.open_store(tmp_path / "home")
    (caption,) = store.rows("invocations", "input_type = 'image'")
    gif = store.blobs.put(base64.b64decode(_gif()))
    store.upsert("invocations", [{**caption, "key": "f" * 32, "step": 9, "input": gif}])
    api.create_snapshot("gif", tmp_path / "home")
    out = tmp_path / "out"
    manifest = export(
        pinned(tmp_path / "home", "gif"),
        ExportOptions(("openai-chat", "hf"), out, val_fraction=0),
        CATALOG,
    )
    assert manifest["skipped"]["image_not_jpeg_png_or_webp_under_10_mb:openai-chat"] == 1
    assert manifest["records"]["openai-chat/vision/train"] == 1
    assert manifest["records"]["hf/vision/train"] == 2


def test_column_wise_image_records_are_the_row_wise_ones_byte_for_byte() -> None:
    """The writer builds image records from columns; ``openai_vision`` and ``hf_row`` say what
    one record is. Captions with quotes, a newline and a control character orjson escapes as
    \\u00XX (which sends a batch row by row), and a GIF, which OpenAI refuses."""
    import orjson
    import pyarrow as pa

    from sandloop.exports import images
    from sandloop.exports.redact import Redactor

    png = base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
    )
    gif = b"GIF89a" + b"\x00" * 20
    blobs = {"p1": png, "p2": png + b"\x00", "g": gif, "gone": None}

    def read(hashes: list[str]) -> list[bytes | None]:
        return [blobs[h] for h in hashes]

    texts = ['a "red" balloon\nover sea', "key sk-" + "a" * 40, "plain", "lost"]
    for odd in ("", "\x01"):
        rows = pa.table(
            {
                "key": ["k1", "k2", "k3", "k4"],
                "thread": ["t"] * 4,
                "model": ["dummy:image-to-text", "dummy:text-to-image", "m", "m"],
                "input": ["p1", texts[1], "g", "gone"],
                "input_type": ["image", "text", "image", "image"],
                "output": [texts[0] + odd, "p2", texts[2], texts[3]],
                "output_type": ["text", "image", "text", "text"],
            }
        )
        redact = Redactor()
        batch = images.image_batch(rows, read, redact.arrow, set())
        assert batch.skipped == {"image_blob_missing": 1} and batch.duplicates == 0
        assert redact.counts == {"openai_key": 1}
        table = batch.table
        assert table["kind"].to_pylist() == ["vision", "text-to-image", "vision"]
        assert images.images_pass_checks(table).to_pylist() == [True, True, False]
        examples = list(images.examples_of(table))
        assert examples[1].text == "key [REDACTED:openai_key]"
        vision = table.filter(pa.array([True, False, True]))
        lines = images.vision_lines(vision).to_pylist()
        assert lines == [
            orjson.dumps(images.openai_vision(e)).decode() + "\n"
            for e in images.examples_of(vision)
        ]
        for kind, chosen in (("vision", vision), ("text-to-image", table.slice(1, 1))):
            built = images.hf_table(chosen, kind)
            rows_of = [images.hf_row(e) for e in images.examples_of(chosen)]
            expected = pa.Table.from_pylist(rows_of, schema=images.HF_IMAGE_SCHEMAS[kind])
            assert built.equals(expected, check_metadata=True)
    seen: set[bytes] = set()
    for expected_duplicates in (0, 3):  # the same rows again: each is an exact duplicate
        again = images.image_batch(rows, read, Redactor().arrow, seen)
        assert again.duplicates == expected_duplicates
        assert again.read_bytes == 2 * len(png) + 1 + len(gif)  # duplicates were read too
        assert len(again.table) == 3 - expected_duplicates
    # The next chunk is sized by what was read: repeated images still filled memory once.
    assert images.image_chunk_rows(64, 64 * images.IMAGE_CHUNK_BYTES) == 16  # the fewest
    assert images.image_chunk_rows(64, images.IMAGE_CHUNK_BYTES // 2) == 128
    assert images.image_chunk_rows(64, 1) == 8192  # the most


@pytest.mark.slow
@pytest.mark.parametrize("file_set", ["hf", "trl"])
def test_trl_trains_a_vision_language_model_on_the_vision_config(
    exported: tuple[Path, dict], tmp_path: Path, file_set: str
) -> None:
    """The hf `vision` config and the trl `vision` file as they load, with no reshaping:
    TRL's SFT trainer fills the image placeholders from `images`, its batches carry the
    images' `pixel_values` (issue 37, item 15: openai-chat's vision file trained with none),
    and it takes two steps on a tiny LLaVA built here."""
    import math

    from tests.exports.trainers import train_vision
    from tests.tiny_models import build_tiny_llava

    out, _ = exported
    found = train_vision(out, build_tiny_llava(tmp_path / "llava"), file_set)
    assert found["pixel_values"] is not None and found["pixel_values"][0] == 2, found
    assert found["steps"] == 2 and math.isfinite(found["loss"]) and found["loss"] > 0, found


def test_the_manifest_counts_image_steps_once_and_tokens_exactly(
    home: Path, exported: tuple[Path, dict]
) -> None:
    """Issue 37, item 13: exported image steps were also listed as skipped, and the token
    total was a sampled mean times a count that held the image examples."""
    from sandloop.exports import token_counts

    out, manifest = exported
    assert "network_not_text_or_failed" not in manifest["skipped"]  # every step was usable
    train = manifest["tokens"]["train"]
    text_lines = lines(out / "openai-chat" / "train.jsonl")  # the text examples, no images
    counted = sum(token_counts.count_messages(r["messages"]) for r in text_lines)
    assert train["examples"] == len(text_lines) == train["sampled"]
    assert train["total"] == counted and "estimated_total" not in train
