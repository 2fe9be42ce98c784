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


def audio_label(metadata: Any) -> str:
    """An audio step's duration and rate, from its step metadata (a JSON string in the store)."""
    import orjson

    try:
        about = orjson.loads(metadata).get("audio") if isinstance(metadata, str) else None
    except orjson.JSONDecodeError:
        about = None
    if not isinstance(about, dict):
        return "audio"
    return f"audio {about.get('duration_s', 0):.2f} s at {about.get('sample_rate', 0)} Hz"


#: Columns that hold whole numbers, which pandas reads as floats once one of them is missing.
WHOLE_NUMBER_COLUMNS = ("seed", "steps", "step", "loop_length", "turn")


def whole_numbers(frame: Any) -> Any:
    """``frame`` with its whole-number columns as nullable integers, so JSON says ``"seed": 3``
    and ``null``, not ``3.0`` and ``NaN``."""
    found = [c for c in WHOLE_NUMBER_COLUMNS if c in frame.columns and frame[c].dtype.kind == "f"]
    return frame.astype({c: "Int64" for c in found}) if found else frame


def counted(n: int, noun: str) -> str:
    """A count with its noun, singular when it is one: '1 run', '3 runs' (not '1 runs')."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def status_line(status: str, reason: str | None) -> str:
    """'failed: the model refused', or 'failed' alone when the reason only repeats it."""
    return status if not reason or reason == status else f"{status}: {reason}"
