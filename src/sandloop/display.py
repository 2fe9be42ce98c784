"""How outputs are shortened for tables, progress lines and UI summaries."""

from __future__ import annotations

from typing import Any


def excerpt(value: Any, output_type: Any = "text", width: int = 60) -> str:
    """One line of at most ``width`` characters; blobs are shown by type and hash prefix."""
    if value is None or (isinstance(value, float) and value != value):  # None or NaN
        return ""
    if output_type != "text":
        return f"<{output_type} {str(value)[:10]}>"
    flat = " ".join(str(value).split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"
