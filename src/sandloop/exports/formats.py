"""Dataset formats: how one example becomes one record (or none) in each.

A format is a set of files per split; most have one, TRL has three (prompt/completion,
conversational messages, and preference pairs) and hf two (sft and preference configs).
Records are plain dicts written as JSONL, or rows of the Hugging Face parquet folder.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from sandloop.exports.examples import Example, Message

FORMATS = ("openai-chat", "openai-dpo", "trl", "sharegpt", "alpaca", "hf")
SHAREGPT_ROLES = {"system": "system", "user": "human", "assistant": "gpt", "tool": "tool"}

Record = dict[str, Any]


def formats_problem(formats: tuple[str, ...] | list[str]) -> str | None:
    """What is wrong with the formats asked for, or None. A format's name becomes a folder of
    the export, so every face (CLI, HTTP, flow) checks it here before any path is built:
    ``../../etc`` is a name that is not in the table, never a path."""
    unknown = [f for f in formats if f not in FORMATS]
    if not unknown and formats:
        return None
    named = ", ".join(f if f.isprintable() and len(f) <= 60 else repr(f[:60]) for f in unknown)
    named = named or "(none given)"
    return f"unknown format {named}; formats: {', '.join(FORMATS)}"


def _plain(messages: tuple[Message, ...] | list[Message]) -> list[Message]:
    """Messages without OpenAI-only keys (weight), for the other formats."""
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def _rejected(example: Example) -> list[Message]:
    return [{"role": "assistant", "content": example.rejected}]


def openai_chat(example: Example) -> Iterator[tuple[str, Record]]:
    yield "", {"messages": list(example.messages)}


def openai_dpo(example: Example) -> Iterator[tuple[str, Record]]:
    if example.rejected is None:
        return
    yield (
        "",
        {
            "input": {"messages": _plain(example.messages[:-1])},
            "preferred_output": _plain(example.messages[-1:]),
            "non_preferred_output": _rejected(example),
        },
    )


#: Where openai-dpo's provenance goes: OpenAI's preference lines take no extra keys, so each
#: line's origin is a line of its own in ``openai-dpo/provenance/SPLIT.jsonl``, in step.
PROVENANCE = "openai-dpo/provenance"


def provenance(example: Example, line: int) -> Record:
    """Which step a preference line came from, and who said its rejected side is worse."""
    return {
        "line": line,
        "key": example.key,
        "kind": example.kind,
        "thread": example.thread,
        "model": example.model,
        "source": example.source or "",
    }


def trl(example: Example) -> Iterator[tuple[str, Record]]:
    prompt, completion = _plain(example.messages[:-1]), _plain(example.messages[-1:])
    yield "prompt_completion", {"prompt": prompt, "completion": completion}
    yield "messages", {"messages": _plain(example.messages)}
    if example.rejected is not None:
        yield (
            "preference",
            {
                "prompt": prompt,
                "chosen": completion,
                "rejected": _rejected(example),
                "source": example.source,
            },
        )


def sharegpt(example: Example) -> Iterator[tuple[str, Record]]:
    yield (
        "",
        {
            "conversations": [
                {"from": SHAREGPT_ROLES[m["role"]], "value": m["content"]} for m in example.messages
            ]
        },
    )


def alpaca(example: Example) -> Iterator[tuple[str, Record]]:
    *before, last_user, answer = _plain(example.messages)
    system = [m["content"] for m in before if m["role"] == "system"]
    context = "\n\n".join(f"{m['role']}: {m['content']}" for m in before if m["role"] != "system")
    record: Record = {
        "instruction": last_user["content"],
        "input": context,
        "output": answer["content"],
    }
    if system:
        record["system"] = system[0]
    yield "", record


def hf(example: Example) -> Iterator[tuple[str, Record]]:
    """Two Hub configs, each with only the columns its trainer reads: ``sft`` (``messages``)
    for every example, ``preference`` (``prompt``/``chosen``/``rejected``) where there is a
    pair. One table holding both would have a nullable ``rejected``, which TRL takes for a
    preference column or not depending on Python's hash seed."""
    about = {"key": example.key, "kind": example.kind, "model": example.model}
    yield "sft", {**about, "messages": _plain(example.messages)}
    if example.rejected is not None:
        yield (
            "preference",
            {
                **about,
                "prompt": _plain(example.messages[:-1]),
                "chosen": _plain(example.messages[-1:]),
                "rejected": _rejected(example),
                "source": example.source or "",
            },
        )


WRITERS: dict[str, Callable[[Example], Iterator[tuple[str, Record]]]] = {
    "openai-chat": openai_chat,
    "openai-dpo": openai_dpo,
    "trl": trl,
    "sharegpt": sharegpt,
    "alpaca": alpaca,
    "hf": hf,
}
