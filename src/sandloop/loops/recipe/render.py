"""Templates in, prompts out; model text in, checked output out.

Jinja2 with ``StrictUndefined`` in a sandbox: a template that names a slot nobody fills is an
error that names the slot, and a recipe file cannot reach Python through its template.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

import jinja2
from jinja2 import meta
from jinja2.sandbox import SandboxedEnvironment

from sandloop.errors import SandloopError

_ENV = SandboxedEnvironment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


class TemplateError(SandloopError, ValueError):
    """A template that does not parse or names a slot that has no value."""


@lru_cache(maxsize=512)
def _compiled(source: str) -> jinja2.Template:
    try:
        return _ENV.from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"line {exc.lineno}: {exc.message}") from None


def slots_used(source: str) -> set[str]:
    """The variables a template reads, found by parsing it (not by running it)."""
    try:
        return set(meta.find_undeclared_variables(_ENV.parse(source)))
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"line {exc.lineno}: {exc.message}") from None


def render(source: str, values: dict[str, Any]) -> str:
    try:
        return _compiled(source).render(**values)
    except jinja2.UndefinedError as exc:
        raise TemplateError(f"{exc.message}; give it with --context or in the recipe") from None


def extract_json(text: str) -> Any:
    """The JSON a model wrote: the whole text, a fenced block, or the outermost {...}/[...]."""
    candidates = [text.strip(), *(m.strip() for m in _FENCE.findall(text))]
    for opener, closer in (("{", "}"), ("[", "]")):
        start, end = text.find(opener), text.rfind(closer)
        if 0 <= start < end:
            candidates.append(text[start : end + 1])
    for candidate in candidates:
        try:
            return json.loads(candidate)
        except ValueError:
            continue
    raise ValueError("no JSON found in the output")


def check_output(text: str, schema: dict[str, Any] | None) -> tuple[Any, list[str]]:
    """(parsed output, validation errors). Without a schema any non-empty text is valid."""
    if not text.strip():
        return None, ["the output is empty"]
    if schema is None:
        return text, []
    import jsonschema

    try:
        parsed = extract_json(text)
    except ValueError as exc:
        return None, [str(exc)]
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = [
        f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
        for e in sorted(validator.iter_errors(parsed), key=lambda e: list(e.absolute_path))
    ]
    return parsed, errors
