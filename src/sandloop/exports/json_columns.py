"""JSON lines built a whole Arrow column at a time: the bulk of an export is short texts, and
serialising them row by row in Python would dominate it.

The bytes are those orjson writes row by row, as long as no text holds a control character
orjson writes as ``\\u00XX``; ``has_odd_control`` tells a caller to go row by row instead.

Both questions (any such control character? anything to escape?) are asked of a histogram of
the column's UTF-8 bytes rather than by a regular expression: every byte they look for is
ASCII, which never occurs inside a multi-byte UTF-8 sequence, and counting bytes runs at memory
speed where RE2 walks each text.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_ESCAPED = [ord(c) for c in '\\"\n\r\t\b\f']
# The control characters orjson writes as \u00XX: all but \b \t \n \f \r.
_ODD = [*range(0x08), 0x0B, *range(0x0E, 0x20)]


def byte_counts(values: Any) -> np.ndarray:
    """How often each control character, quote and backslash occurs in the texts of a string
    column (nulls hold none); other bytes count 0."""
    counts = np.zeros(256, np.int64)
    chunks = values.chunks if isinstance(values, pa.ChunkedArray) else [values]
    for chunk in chunks:
        if len(chunk) == 0:
            continue
        offsets_buffer, data = chunk.buffers()[1], chunk.buffers()[2]
        if data is None:
            continue
        width = np.dtype(np.int64 if pa.types.is_large_string(chunk.type) else np.int32)
        offsets = np.frombuffer(
            offsets_buffer, width, len(chunk) + 1, chunk.offset * width.itemsize
        )
        used = np.frombuffer(data, np.uint8)[offsets[0] : offsets[-1]]
        # Only the bytes asked about are counted: bincount widens every byte it is given.
        asked = used[(used < 0x20) | (used == 0x22) | (used == 0x5C)]
        counts += np.bincount(asked, minlength=256)
    return counts


def has_odd_control(values: Any) -> bool:
    return bool(byte_counts(values)[_ODD].any())


def json_string(values: Any) -> Any:
    """JSON string bodies, escaped as orjson escapes them; most texts need nothing."""
    if not byte_counts(values)[_ESCAPED].any():
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
