"""JSON lines built a whole Arrow column at a time: the bulk of an export is short texts, and
serialising them row by row in Python would dominate it.

The bytes are those orjson writes row by row, as long as no text holds a control character
orjson writes as ``\\u00XX``; ``has_odd_control`` tells a caller to go row by row instead.
"""

from __future__ import annotations

from typing import Any

import pyarrow.compute as pc

_NEEDS_ESCAPE = '[\\\\"\\n\\r\\t\\x08\\x0c]'
_ODD_CONTROL = "[\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f]"


def has_odd_control(values: Any) -> bool:
    return bool(pc.any(pc.match_substring_regex(values, _ODD_CONTROL)).as_py())


def json_string(values: Any) -> Any:
    """JSON string bodies, escaped as orjson escapes them; most texts need nothing."""
    if not pc.any(pc.match_substring_regex(values, _NEEDS_ESCAPE)).as_py():
        return values
    for raw, escaped in (
        ("\\", "\\\\"),
        ('"', '\\"'),
        ("\n", "\\n"),
        ("\r", "\\r"),
        ("\t", "\\t"),
        ("\b", "\\b"),
        ("\f", "\\f"),
    ):
        values = pc.replace_substring(values, raw, escaped)
    return values
