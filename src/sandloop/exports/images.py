"""Image exchanges as training examples: what a PANIC-style network teaches besides text.

- an image→text step (a caption) is a vision SFT example: the image as the user's turn and the
  caption as the assistant's; OpenAI's vision fine-tuning format carries the image as a data
  URL content part, and the hf ``vision`` config as a ``datasets`` Image beside TRL-style
  messages (``{"type": "image"}`` where the image goes);
- a text→image step is a (prompt, image) pair, for image-model fine-tuning: the hf
  ``text-to-image`` config.

Formats that hold only text (openai-dpo, trl, sharegpt, alpaca) leave them out, and the
manifest counts what each left out.
"""

from __future__ import annotations

import base64
import hashlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from sandloop.exports.arrow_lists import exchanges, interleaved, offsets
from sandloop.exports.json_columns import has_odd_control, json_string
from sandloop.storage.blobs import sniff_media_type

VISION = "vision"  # image→text
TEXT_TO_IMAGE = "text-to-image"
IMAGE_FORMATS = ("openai-chat", "hf", "trl")  # the formats that carry images
#: What OpenAI's vision fine-tuning accepts (JPEG, PNG, WEBP), and its size limit per image.
OPENAI_MEDIA_TYPES = frozenset({"image/jpeg", "image/png", "image/webp"})
OPENAI_MAX_IMAGE_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ImageExample:
    key: str  # the step's key: orders the dataset and decides the split
    kind: str  # vision | text-to-image
    thread: str
    model: str
    text: str  # the caption (vision) or the prompt (text-to-image)
    image: bytes
    media_type: str


media_type = sniff_media_type  # the name the export's checks use


def image_exchanges(rows: pa.Table) -> Any:
    """Which rows are successful steps with an image on one side and text on the other: a
    mask, so the text path can count them as exported elsewhere, not skipped."""
    ok = pc.equal(rows["status"], "ok")
    vision = pc.and_(pc.equal(rows["input_type"], "image"), pc.equal(rows["output_type"], "text"))
    drawn = pc.and_(pc.equal(rows["input_type"], "text"), pc.equal(rows["output_type"], "image"))
    texts = pc.if_else(vision, rows["output"], rows["input"])
    present = pc.greater(pc.utf8_length(pc.utf8_trim_whitespace(texts)), 0)
    keep = pc.and_(pc.and_(ok, pc.or_(vision, drawn)), present)
    return pc.fill_null(keep, False)


def image_rows(rows: pa.Table) -> pa.Table:
    """Successful steps with an image on one side and text on the other."""
    return rows.filter(image_exchanges(rows))


#: Images read at once: memory holds about a chunk of images, never the export's. A chunk's
#: rows start at the first figure and follow the images' sizes within the bounds.
IMAGE_CHUNK_BYTES = 32 << 20
IMAGE_CHUNK_ROWS = (64, 16, 8192)  # first, fewest, most


def image_chunk_rows(rows: int, read_bytes: int) -> int:
    """The next chunk's rows, from the bytes the last chunk of ``rows`` rows read (duplicates
    and all: a chunk of repeated images still held them)."""
    _, fewest, most = IMAGE_CHUNK_ROWS
    wanted = rows * IMAGE_CHUNK_BYTES // read_bytes if read_bytes else fewest
    return max(fewest, min(most, wanted))


@dataclass(frozen=True, slots=True)
class ImageBatch:
    """Image steps ready to write, a column each: key, kind, thread, model, text (redacted),
    image (bytes) and media_type."""

    table: pa.Table
    skipped: Counter[str]  # rows left out, by reason (for the manifest)
    duplicates: int  # rows left out as exact duplicates of an earlier one
    read_bytes: int  # of every image read, kept or not: what the next chunk is sized by


def image_batch(
    rows: pa.Table,
    read: Callable[[list[str]], list[bytes | None]],
    redact: Callable[[Any], Any],
    seen: set[bytes] | None,
) -> ImageBatch:
    """Rows of ``image_rows`` with their images read (``read``: hashes → bytes or None) and
    their texts redacted (``redact``: a string column → a string column). A row whose image
    is missing or not an image is left out with its reason; with ``seen``, so is one whose
    kind, text and image an earlier row had (exact de-duplication across the export)."""
    vision = pc.equal(rows["input_type"], "image")
    images = read(pc.if_else(vision, rows["input"], rows["output"]).to_pylist())
    types = [None if data is None else media_type(data) for data in images]
    skipped: Counter[str] = Counter()
    readable = []
    for data, found in zip(images, types, strict=True):
        if data is None:
            skipped["image_blob_missing"] += 1
        elif found is None:
            skipped["image_unreadable"] += 1
        readable.append(found is not None)
    mask = pa.array(readable, pa.bool_())
    kinds = pc.if_else(vision, VISION, TEXT_TO_IMAGE).filter(mask)
    texts = redact(pc.if_else(vision, rows["output"], rows["input"]).filter(mask))
    datas = [data for data, ok in zip(images, readable, strict=True) if ok and data is not None]
    types = [found for found in types if found is not None]
    keep = [True] * len(datas)
    if seen is not None:
        for row, (kind, text, data) in enumerate(
            zip(kinds.to_pylist(), texts.to_pylist(), datas, strict=True)
        ):
            digest = hashlib.blake2b(
                b"\x1f".join((kind.encode(), text.encode(), data)), digest_size=16
            ).digest()
            if digest in seen:
                keep[row] = False
            seen.add(digest)
    table = pa.table(
        {
            "key": rows["key"].filter(mask),
            "kind": kinds,
            "thread": rows["thread"].filter(mask),
            "model": rows["model"].filter(mask),
            "text": texts,
            "image": pa.array(datas, pa.binary()),
            "media_type": pa.array(types, pa.string()),
        }
    )
    total = sum(len(data) for data in images if data is not None)
    return ImageBatch(table.filter(pa.array(keep, pa.bool_())), skipped, keep.count(False), total)


def images_pass_checks(batch: pa.Table) -> pa.ChunkedArray:
    """What every format check of an image record asks, answered column-wise: a caption or
    prompt that is not blank, and an image OpenAI takes. Records of rows that pass skip the
    checks; the others get them all, so the report names their problems."""
    text = pc.greater(pc.utf8_length(pc.utf8_trim_whitespace(batch["text"])), 0)
    typed = pc.is_in(batch["media_type"], pa.array(sorted(OPENAI_MEDIA_TYPES)))
    small = pc.less_equal(pc.binary_length(batch["image"]), OPENAI_MAX_IMAGE_BYTES)
    return pc.and_(pc.and_(text, typed), small)


def examples_of(batch: pa.Table) -> Iterator[ImageExample]:
    names = ("key", "kind", "thread", "model", "text", "image", "media_type")
    for values in zip(*(batch[c].to_pylist() for c in names), strict=True):
        yield ImageExample(*values)


def vision_lines(batch: pa.Table) -> pa.ChunkedArray | pa.Array:
    """``openai_vision`` of every row as JSON lines, the bytes orjson writes, built column-wise
    (see `exports.json_columns`); row by row where a caption has a character that needs it."""
    if has_odd_control(batch["text"]):
        return pa.array(
            [orjson.dumps(openai_vision(e)).decode() + "\n" for e in examples_of(batch)],
            pa.string(),
        )
    encoded = pa.array(
        [base64.b64encode(data).decode() for data in batch["image"].to_pylist()], pa.string()
    )
    return pc.binary_join_element_wise(
        '{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:',
        batch["media_type"],
        ";base64,",
        encoded,
        '"}}]},{"role":"assistant","content":"',
        json_string(batch["text"]),
        '"}]}\n',
        "",
    )


def hf_table(batch: pa.Table, kind: str) -> pa.Table:
    """Rows of one kind as its hf config (``HF_IMAGE_SCHEMAS``): what ``hf_row`` builds one at
    a time, built from the columns."""
    n = len(batch)
    schema = HF_IMAGE_SCHEMAS[kind]
    about = [
        batch["key"].combine_chunks(),
        pa.array(["network"] * n, pa.string()),
        batch["model"].combine_chunks(),
    ]
    text = batch["text"].combine_chunks()
    if kind == TEXT_TO_IMAGE:
        image = _image_cells(batch, schema.field("image").type)
        return pa.Table.from_arrays([*about, text, image], schema=schema)
    # Each example: a user turn holding the image placeholder, an assistant turn the caption.
    messages_type = schema.field("messages").type
    content_type = messages_type.value_type.field("content").type
    parts = pa.StructArray.from_arrays(
        [
            pa.array(["image", "text"] * n, pa.string()),
            interleaved(pa.nulls(n, pa.string()), text),
        ],
        fields=list(content_type.value_type),
    )
    one_part = pa.ListArray.from_arrays(offsets(2 * n, 1), parts, type=content_type)
    messages = exchanges(one_part[0::2], one_part[1::2], messages_type)
    images_type = schema.field("images").type
    cells = _image_cells(batch, images_type.value_type)
    images = pa.ListArray.from_arrays(offsets(n, 1), cells, type=images_type)
    return pa.Table.from_arrays([*about, messages, images], schema=schema)


def _image_cells(batch: pa.Table, cell_type: pa.StructType) -> pa.StructArray:
    """`datasets`' Image cells: the bytes, and no path."""
    data = batch["image"].combine_chunks()
    return pa.StructArray.from_arrays(
        [data, pa.nulls(len(data), pa.string())], fields=list(cell_type)
    )


def data_url(example: ImageExample) -> str:
    return f"data:{example.media_type};base64,{base64.b64encode(example.image).decode()}"


def openai_vision(example: ImageExample) -> dict[str, Any]:
    """OpenAI's vision fine-tuning example: the image in the user's turn, the caption as the
    answer."""
    image = {"type": "image_url", "image_url": {"url": data_url(example)}}
    return {
        "messages": [
            {"role": "user", "content": [image]},
            {"role": "assistant", "content": example.text},
        ]
    }


def hf_row(example: ImageExample) -> dict[str, Any]:
    """A row of the hf ``vision`` or ``text-to-image`` config (``HF_IMAGE_SCHEMAS``)."""
    image = {"bytes": example.image, "path": None}
    about = {"key": example.key, "kind": "network", "model": example.model}
    if example.kind == TEXT_TO_IMAGE:
        return {**about, "prompt": example.text, "image": image}
    return {
        **about,
        "messages": [
            {"role": "user", "content": [{"type": "image", "text": None}]},
            {"role": "assistant", "content": [{"type": "text", "text": example.text}]},
        ],
        "images": [image],
    }


def _image_schemas() -> dict[str, pa.Schema]:
    """The image configs' columns, with the `datasets` features that make ``image`` and
    ``images`` decode as images (kept in the parquet metadata, where `datasets` reads them).
    Nullable, as `datasets` writes them: it applies the features only to a column whose type
    is exactly theirs. The format checks stand in for the non-null guarantee."""
    image = pa.struct([pa.field("bytes", pa.binary()), pa.field("path", pa.string())])
    part = pa.struct([pa.field("type", pa.string()), pa.field("text", pa.string())])
    message = pa.struct([pa.field("role", pa.string()), pa.field("content", pa.list_(part))])
    about = [pa.field(name, pa.string()) for name in ("key", "kind", "model")]
    value = {"dtype": "string", "_type": "Value"}
    about_features = {"key": value, "kind": value, "model": value}
    vision_features = {
        **about_features,
        "messages": {
            "feature": {
                "role": value,
                "content": {"feature": {"type": value, "text": value}, "_type": "List"},
            },
            "_type": "List",
        },
        "images": {"feature": {"_type": "Image"}, "_type": "List"},
    }
    drawn_features = {**about_features, "prompt": value, "image": {"_type": "Image"}}

    def described(fields: list[pa.Field], features: dict[str, Any]) -> pa.Schema:
        meta = {"huggingface": orjson.dumps({"info": {"features": features}}).decode()}
        return pa.schema(fields, metadata=meta)

    return {
        VISION: described(
            [
                *about,
                pa.field("messages", pa.list_(message)),
                pa.field("images", pa.list_(image)),
            ],
            vision_features,
        ),
        TEXT_TO_IMAGE: described(
            [
                *about,
                pa.field("prompt", pa.string()),
                pa.field("image", image),
            ],
            drawn_features,
        ),
    }


HF_IMAGE_SCHEMAS = _image_schemas()
