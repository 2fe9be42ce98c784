"""Format checks run before anything is written (and by `sandloop export validate`).

For openai-chat these are the checks of OpenAI's fine-tuning data-preparation cookbook, extended
to `tool_calls` and the `tool` role: every example has messages, known keys and roles, content
where content is required, an assistant message, and fits the token limit. The others check the
shape their tools load.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from sandloop.exports import token_counts

MESSAGE_KEYS = {"role", "content", "name", "function_call", "tool_calls", "tool_call_id", "weight"}
ROLES = {"system", "user", "assistant", "tool", "function"}
DEFAULT_MAX_TOKENS = 65_536
_PLAIN_ROLES = frozenset({"system", "user", "assistant"})
_MESSAGE_BOUND = 3 + 4 * 12  # framing tokens + a role's tokens, at most, per message


@dataclass
class Report:
    """Problems by kind, with the first few lines each occurs on."""

    examples: int = 0
    problems: Counter[str] = field(default_factory=Counter)
    where: dict[str, list[int]] = field(default_factory=dict)

    def add(self, problem: str, line: int) -> None:
        self.problems[problem] += 1
        self.where.setdefault(problem, [])
        if len(self.where[problem]) < 5:
            self.where[problem].append(line)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        if self.ok:
            return f"{self.examples} examples, no problems"
        parts = [
            f"{p}: {n} (lines {', '.join(map(str, self.where[p]))})"
            for p, n in self.problems.items()
        ]
        return f"{self.examples} examples; " + "; ".join(parts)


def _check_message(message: Any, report: Report, line: int) -> None:
    if not isinstance(message, dict):
        report.add("message_not_an_object", line)
        return
    if set(message) - MESSAGE_KEYS:
        report.add("message_unrecognized_key", line)
    role = message.get("role")
    if role not in ROLES:
        report.add("unrecognized_role", line)
    content = message.get("content")
    has_calls = bool(message.get("tool_calls") or message.get("function_call"))
    if isinstance(content, list):
        _check_parts(content, role, report, line)
    elif content is None and not has_calls:
        report.add("missing_content", line)
    elif (
        content is not None
        and (not isinstance(content, str) or not content.strip())
        and not (has_calls and content == "")
    ):
        report.add("empty_or_non_text_content", line)
    if role == "tool" and not message.get("tool_call_id"):
        report.add("tool_message_without_tool_call_id", line)
    for call in message.get("tool_calls") or []:
        function = call.get("function") if isinstance(call, dict) else None
        if (
            not isinstance(call, dict)
            or call.get("type") != "function"
            or not call.get("id")
            or (
                not isinstance(function, dict)
                or not function.get("name")
                or not isinstance(function.get("arguments"), str)
            )
        ):
            report.add("malformed_tool_call", line)
    if "weight" in message and (role != "assistant" or message["weight"] not in (0, 1)):
        report.add("bad_weight", line)


def _check_parts(parts: list[Any], role: Any, report: Report, line: int) -> None:
    """Content parts, as OpenAI's vision fine-tuning takes them: text, or an image (a data URL
    of a JPEG, PNG or WEBP of at most 10 MB, or an https URL) in a user message."""
    if not parts:
        report.add("empty_or_non_text_content", line)
    for part in parts:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if not isinstance(part.get("text"), str) or not part["text"].strip():
                report.add("empty_text_part", line)
            continue
        if kind != "image_url":
            report.add("unrecognized_content_part", line)
            continue
        if role != "user":
            report.add("image_not_in_user_message", line)
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else None
        if not isinstance(url, str) or not url.startswith(("data:", "https://")):
            report.add("image_url_malformed", line)
        elif url.startswith("data:"):
            _check_data_url(url, report, line)
        if isinstance(image, dict) and image.get("detail", "auto") not in ("auto", "low", "high"):
            report.add("image_detail_unknown", line)


def _check_data_url(url: str, report: Report, line: int) -> None:
    import base64
    import binascii

    from sandloop.exports.images import OPENAI_MAX_IMAGE_BYTES, OPENAI_MEDIA_TYPES, media_type

    header, comma, body = url.partition(",")
    declared = header.removeprefix("data:").removesuffix(";base64")
    try:
        data = (
            base64.b64decode(body, validate=True) if comma and header.endswith(";base64") else b""
        )
    except binascii.Error:
        data = b""
    if not data:
        report.add("image_data_url_not_base64", line)
    elif declared not in OPENAI_MEDIA_TYPES or media_type(data) != declared:
        report.add("image_type_not_jpeg_png_or_webp", line)
    elif len(data) > OPENAI_MAX_IMAGE_BYTES:
        report.add("image_over_10_mb", line)


def check_openai_chat(
    record: Any, report: Report, line: int, max_tokens: int, token_count: int | None = None
) -> None:
    messages = record.get("messages") if isinstance(record, dict) else None
    if not isinstance(messages, list) or not messages:
        report.add("missing_messages_list", line)
        return
    answered = False
    chars = 0
    for message in messages:
        # The common message, {"role": "user"|"assistant"|"system", "content": "text"}, is
        # checked in a few comparisons; anything else gets every check.
        if (
            type(message) is dict
            and len(message) == 2
            and message.get("role") in _PLAIN_ROLES
            and type(content := message.get("content")) is str
            and content.strip()
        ):
            chars += len(content)
        else:
            _check_message(message, report, line)
            if isinstance(message, dict):
                chars += len(token_counts.text_of(message.get("content"))) + len(
                    str(message.get("name") or "")
                )
        if isinstance(message, dict) and message.get("role") == "assistant":
            answered = True
    if not answered:
        report.add("example_missing_assistant_message", line)
    if token_count is None:
        # A BPE token is at least one byte and a character at most four: an example whose
        # characters ×4 fit under the limit cannot be over it; only a long one is tokenised.
        # Each message adds 3 framing tokens and its role's (a role is under 12 characters).
        if 4 * chars + _MESSAGE_BOUND * len(messages) + 3 <= max_tokens:
            return
        token_count = token_counts.count_messages([m for m in messages if isinstance(m, dict)])
    if token_count > max_tokens:
        report.add("over_token_limit", line)


def _chat_list(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(
            isinstance(m, dict)
            and m.get("role") in ROLES
            and isinstance(m.get("content"), str)
            and m["content"].strip()
            for m in value
        )
    )


def check_shape(fmt: str, part: str, record: Any, report: Report, line: int) -> None:
    if not isinstance(record, dict):
        report.add("record_not_an_object", line)
        return
    if fmt in ("hf", "trl") and part in ("vision", "text-to-image"):
        _check_hf_images(part, record, report, line)
    elif fmt == "openai-dpo":
        inner = record.get("input")
        if not isinstance(inner, dict) or not _chat_list(inner.get("messages")):
            report.add("dpo_input_messages", line)
        for side in ("preferred_output", "non_preferred_output"):
            if not _chat_list(record.get(side)) or record[side][-1]["role"] != "assistant":
                report.add(f"dpo_{side}", line)
    elif fmt == "trl":
        required = {
            "prompt_completion": ("prompt", "completion"),
            "messages": ("messages",),
            "preference": ("prompt", "chosen", "rejected"),
        }[part]
        for column in required:
            if not _chat_list(record.get(column)):
                report.add(f"trl_{part}_{column}", line)
    elif fmt == "sharegpt":
        turns = record.get("conversations")
        if (
            not isinstance(turns, list)
            or not turns
            or any(
                not isinstance(t, dict)
                or t.get("from") not in {"system", "human", "gpt", "tool"}
                or not str(t.get("value") or "").strip()
                for t in turns
            )
        ):
            report.add("sharegpt_conversations", line)
        elif turns[-1]["from"] != "gpt":
            report.add("sharegpt_last_turn_not_gpt", line)
    elif fmt == "alpaca":
        for column in ("instruction", "output"):
            if not isinstance(record.get(column), str) or not record[column].strip():
                report.add(f"alpaca_{column}", line)
        if not isinstance(record.get("input"), str):
            report.add("alpaca_input", line)
    elif fmt == "hf":
        columns = ("prompt", "chosen", "rejected") if part == "preference" else ("messages",)
        for column in columns:
            if not _chat_list(record.get(column)):
                report.add(f"hf_{part or 'sft'}_{column}", line)


def _image_cell(value: Any) -> bool:
    from sandloop.exports.images import media_type

    data = value.get("bytes") if isinstance(value, dict) else None
    return isinstance(data, bytes) and media_type(data) is not None


def _check_hf_images(part: str, record: dict[str, Any], report: Report, line: int) -> None:
    """The image configs: every image decodes as one, and a vision example's messages hold as
    many image placeholders as it has images (what TRL's vision collators pair up)."""
    if part == "text-to-image":
        if not isinstance(record.get("prompt"), str) or not record["prompt"].strip():
            report.add("hf_text-to-image_prompt", line)
        if not _image_cell(record.get("image")):
            report.add("hf_text-to-image_image", line)
        return
    images, messages = record.get("images"), record.get("messages")
    if not isinstance(images, list) or not images or not all(map(_image_cell, images)):
        report.add("hf_vision_images", line)
        return
    if not isinstance(messages, list) or not messages or messages[-1].get("role") != "assistant":
        report.add("hf_vision_messages", line)
        return
    placeholders = sum(
        1 for m in messages for p in m.get("content") or [] if p.get("type") == "image"
    )
    if placeholders != len(images):
        report.add("hf_vision_image_count", line)


def check(
    fmt: str,
    part: str,
    record: Any,
    report: Report,
    line: int,
    max_tokens: int,
    token_count: int | None = None,
) -> None:
    report.examples += 1
    if fmt == "openai-chat":
        check_openai_chat(record, report, line, max_tokens, token_count)
    else:
        check_shape(fmt, part, record, report, line)


def validate_file(path: Path, fmt: str, max_tokens: int = DEFAULT_MAX_TOKENS) -> Report:
    """Check a JSONL file (optionally .zst) or a parquet file of the hf format."""
    report = Report()
    part = path.name.split(".")[0] if fmt == "trl" else ""
    if fmt == "hf":  # hf/CONFIG/SPLIT-00000-of-00001.parquet
        known = ("sft", "preference", "vision", "text-to-image")
        part = path.parent.name if path.parent.name in known else "sft"
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        for line, record in enumerate(pq.read_table(path).to_pylist(), start=1):
            check(fmt, part, record, report, line, max_tokens)
        return report
    for line, raw in enumerate(_lines(path), start=1):
        try:
            record = orjson.loads(raw)
        except orjson.JSONDecodeError:
            report.examples += 1
            report.add("not_json", line)
            continue
        check(fmt, part, record, report, line, max_tokens)
    return report


def _lines(path: Path) -> list[bytes]:
    if path.suffix == ".zst":
        import pyarrow as pa

        with pa.CompressedInputStream(str(path), "zstd") as stream:
            data = stream.read()
    else:
        data = path.read_bytes()
    return [line for line in data.splitlines() if line.strip()]
