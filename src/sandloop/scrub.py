"""Scrubbing secrets out of error text before it is recorded, logged or printed.

Providers echo keys back: a 401 may repeat the key it refused, in full or masked
(``sk-SENTI****…4d54``). Error text goes into the store, Prefect states and logs, artifacts, the
CLI and trace exports, so it is cleaned once, where a failure is caught, of every key the user
has configured and of anything shaped like a key.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

#: Shapes of the keys sandloop knows providers to issue; exports redact the same shapes.
KEY_PATTERNS: dict[str, str] = {
    "openai_key": r"\bsk-(?:proj-)?[A-Za-z0-9_\-]{20,}",
    "replicate_key": r"\br8_[A-Za-z0-9]{20,}",
    "hf_token": r"\bhf_[A-Za-z0-9]{20,}",
    "aws_key": r"\bAKIA[0-9A-Z]{16}\b",
    "github_token": r"\bgh[pousr]_[A-Za-z0-9]{30,}",
    "bearer": r"\b(?i:bearer)\s+[A-Za-z0-9._\-]{20,}",
    "sandloop_token": r"\bsl_[A-Za-z0-9_\-]{40,}",  # sandloop's own API tokens
}
#: A key shown with its middle masked: some characters, a run of mask characters, maybe more.
MASKED_KEY = r"[A-Za-z0-9_\-]{2,}[*•]{3,}[A-Za-z0-9_\-*•…]*"
#: Known secrets shorter than this are not scrubbed by value: they would match ordinary words.
MIN_SECRET_CHARS = 8
REPLACEMENT = "[secret]"

_SHAPES = re.compile("|".join(f"(?:{p})" for p in [*KEY_PATTERNS.values(), MASKED_KEY]))


def scrub(text: str, known: Iterable[str] = ()) -> str:
    """``text`` with every known secret (and its first and last few characters, the parts a
    masked echo keeps next to each other) and every key-shaped string replaced."""
    for secret in sorted({k for k in known if len(k) >= MIN_SECRET_CHARS}, key=len, reverse=True):
        text = text.replace(secret, REPLACEMENT)
    return _SHAPES.sub(REPLACEMENT, text)


def scrub_exception(exc: BaseException, known: Iterable[str] = ()) -> BaseException:
    """The same exception with its text scrubbed and its chain cut (a traceback prints the
    causes too, and a client's exception carries the whole response body)."""
    secrets = list(known)
    exc.args = tuple(scrub(a, secrets) if isinstance(a, str) else a for a in exc.args)
    decisions = getattr(exc, "decisions", None)
    if isinstance(decisions, list):
        exc.decisions = scrub_value(decisions, secrets)  # type: ignore[attr-defined]
    exc.__cause__ = None
    exc.__context__ = None
    exc.__suppress_context__ = True
    if scrub(str(exc), secrets) != str(exc):  # text built from attributes, not args
        from sandloop.models.errors import ModelError

        cleaned = ModelError(scrub(f"{type(exc).__name__}: {exc}", secrets))
        cleaned.__suppress_context__ = True
        return cleaned
    return exc


def scrub_value(value: object, known: Iterable[str] = ()) -> object:
    """Every text inside a JSON-like value, scrubbed (a route's recorded decisions)."""
    secrets = list(known)
    if isinstance(value, str):
        return scrub(value, secrets)
    if isinstance(value, dict):
        return {k: scrub_value(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub_value(v, secrets) for v in value]
    return value
