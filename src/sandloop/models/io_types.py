"""The kinds of data a model takes and gives, and what each task maps between."""

from __future__ import annotations

from typing import Literal

IOType = Literal["text", "image", "audio"]
#: The types a step holds as a blob (its output column keeps the blob's hash).
BLOB_TYPES: tuple[IOType, ...] = ("image", "audio")

TASK_IO: dict[str, tuple[IOType, IOType]] = {
    "text-generation": ("text", "text"),
    "text2text-generation": ("text", "text"),
    "summarization": ("text", "text"),
    "translation": ("text", "text"),
    "fill-mask": ("text", "text"),
    "text-classification": ("text", "text"),
    "zero-shot-classification": ("text", "text"),
    "image-to-text": ("image", "text"),
    "text-to-image": ("text", "image"),
    "image-to-image": ("image", "image"),
    "text-to-speech": ("text", "audio"),
    "text-to-audio": ("text", "audio"),
    "automatic-speech-recognition": ("audio", "text"),
}
SEQ2SEQ_TASKS = ("text2text-generation", "summarization", "translation")
LABEL_TASKS = ("fill-mask", "text-classification", "zero-shot-classification")
AUDIO_TASKS = tuple(t for t, io in TASK_IO.items() if "audio" in io)
