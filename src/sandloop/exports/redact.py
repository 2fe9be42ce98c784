"""Redaction of secrets and personal data from every exported text.

The store keeps exactly what models said; an export is for sharing, so key-shaped strings and
email addresses are replaced (with the kind, so a reader knows something was there) and counted.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sandloop.errors import SandloopError
from sandloop.scrub import KEY_PATTERNS

DEFAULT_PATTERNS: dict[str, str] = {
    **KEY_PATTERNS,
    "email": r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}\b",
}


class RedactError(SandloopError, ValueError):
    """A --redact pattern that is not a regular expression."""


@dataclass
class Redactor:
    patterns: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_PATTERNS))
    counts: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._compiled = [(kind, re.compile(p)) for kind, p in self.patterns.items()]

    @classmethod
    def with_extra(cls, extra: list[str]) -> Redactor:
        import pyarrow as pa
        import pyarrow.compute as pc

        patterns = dict(DEFAULT_PATTERNS)
        for i, pattern in enumerate(extra):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise RedactError(
                    f"--redact {pattern!r} is not a regular expression: {exc}"
                ) from None
            try:  # whole columns are redacted by RE2 (see `arrow`), which knows less than `re`
                pc.match_substring_regex(pa.array([""]), pattern)
            except pa.ArrowInvalid as exc:
                raise RedactError(
                    f"--redact {pattern!r} needs what RE2 lacks (lookaround, backreferences): "
                    f"{str(exc).removeprefix('Invalid regular expression: ')}"
                ) from None
            patterns[f"custom_{i + 1}"] = pattern
        return cls(patterns)

    def arrow(self, values: Any) -> Any:
        """The same replacements over a whole Arrow string column at once (RE2, in C++): the
        bulk of an export is network steps, and a Python regex per text would dominate it."""
        import pyarrow.compute as pc

        anything = "|".join(f"(?:{p})" for p in self.patterns.values())
        if not pc.any(pc.match_substring_regex(values, anything)).as_py():
            return values  # the usual case: one pass, nothing to replace
        for kind, pattern in self.patterns.items():
            found = pc.sum(pc.count_substring_regex(values, pattern)).as_py() or 0
            if found:
                self.counts[kind] += int(found)
                values = pc.replace_substring_regex(values, pattern, f"[REDACTED:{kind}]")
        return values

    def __call__(self, text: str) -> str:
        for kind, pattern in self._compiled:
            text, n = pattern.subn(f"[REDACTED:{kind}]", text)
            if n:
                self.counts[kind] += n
        return text
