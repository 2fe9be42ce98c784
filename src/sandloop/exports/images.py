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
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

VISION = "vision"  # image→text
TEXT_TO_IMAGE = "text-to-image"
IMAGE_FORMATS = ("openai-chat", "hf")  # the formats that carry images
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


def media_type(data: bytes) -> str | None:
    """An image's type from its first bytes (blobs are stored without one)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    return None


def image_rows(rows: pa.Table) -> pa.Table:
    """Successful steps with an image on one side and text on the other."""
    ok = pc.equal(rows["status"], "ok")
    vision = pc.and_(pc.equal(rows["input_type"], "image"), pc.equal(rows["output_type"], "text"))
    drawn = pc.and_(pc.equal(rows["input_type"], "text"), pc.equal(rows["output_type"], "image"))
    texts = pc.if_else(vision, rows["output"], rows["input"])
    present = pc.greater(pc.utf8_length(pc.utf8_trim_whitespace(texts)), 0)
    keep = pc.and_(pc.and_(ok, pc.or_(vision, drawn)), present)
    return rows.filter(pc.fill_null(keep, False))


def image_examples(rows: pa.Table, blob: Any) -> Iterator[ImageExample | str]:
    """One example per row of ``image_rows``, its image read with ``blob(hash)``; a row whose
    image is missing or not an image yields the reason instead, for the manifest."""
    names = ("key", "thread", "model", "input", "output", "input_type")
    columns = [rows[c].to_pylist() for c in names]
    for key, thread, model, given, made, input_type in zip(*columns, strict=True):
        vision = input_type == "image"
        image_hash, text = (given, made) if vision else (made, given)
        try:
            data = blob(str(image_hash))
        except OSError:  # FileNotFoundError among them
            yield "image_blob_missing"
            continue
        found = media_type(data)
        if found is None:
            yield "image_unreadable"
            continue
        kind = VISION if vision else TEXT_TO_IMAGE
        yield ImageExample(key, kind, thread, model, str(text), data, found)


def image_passes_checks(example: ImageExample) -> bool:
    """What every format check of an image record asks, answered from the example itself: a
    caption or prompt that is not blank, and an image OpenAI takes. Records of an example that
    passes skip the checks; the others get them all, so the report names their problems."""
    return (
        bool(example.text.strip())
        and example.media_type in OPENAI_MEDIA_TYPES
        and len(example.image) <= OPENAI_MAX_IMAGE_BYTES
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
