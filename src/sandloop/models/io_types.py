"""The kinds of data a model takes and gives, and what each task maps between."""

from __future__ import annotations

from typing import Literal

IOType = Literal["text", "image"]

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
}
SEQ2SEQ_TASKS = ("text2text-generation", "summarization", "translation")
LABEL_TASKS = ("fill-mask", "text-classification", "zero-shot-classification")
