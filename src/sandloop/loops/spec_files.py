"""Reading spec files of every loop kind: YAML or JSON, bounded, strict, and one line per error.

Validation happens before anything runs or is written; errors name the file, the field and the
fix, so the CLI can print them as they are.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import ConfigDict, ValidationError

from sandloop.errors import SandloopError


class SpecError(SandloopError, ValueError):
    """A spec file that cannot be read or does not validate; the message is one line for the CLI."""


#: The longest text a spec field may hold. Spec text ends up in flow-run parameters, task-run
#: names and Prefect events, which have size limits of their own; a bound here is one clear
#: error instead of a failure half-way through a run.
MAX_TEXT_CHARS = 100_000
#: The longest wait any pace may ask for (a year): datetimes overflow past ~10^11 seconds.
MAX_WAIT_S = 365 * 24 * 3600.0
#: Deeper nesting than this is not a spec anyone wrote by hand (and recursion has limits).
MAX_NESTING = 64


#: Every spec kind's configuration, strict at the boundary: a spec says what it means (``true``
#: is not ``1``, ``"5"`` is not 5), numbers are finite, and text is bounded.
SPEC_CONFIG = ConfigDict(
    extra="forbid",
    frozen=True,
    strict=True,
    allow_inf_nan=False,
    str_max_length=MAX_TEXT_CHARS,
)


#: Spec files are hand-written; anything larger is a mistake (or an attack on the parser).
MAX_SPEC_BYTES = 4 * 1024 * 1024


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys without a word; a spec must not."""


def _mapping_without_duplicates(loader: yaml.SafeLoader, node: yaml.MappingNode) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if isinstance(key, list | dict):
            raise yaml.constructor.ConstructorError(
                None, None, "a mapping key must be text or a number", key_node.start_mark
            )
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates
)


def _no_duplicate_json_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _depth(value: Any, limit: int) -> int:
    """Nesting depth, counted without recursion (so no input can exhaust the stack here)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            if deepest > limit:
                return deepest
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return deepest


def read_text_file(path: Path, max_bytes: int = MAX_SPEC_BYTES) -> str:
    """A spec file's text; anything that is not a regular file of UTF-8 text is refused in one
    line (a FIFO would block forever, a device would never end)."""
    try:
        if not path.exists():
            raise SpecError(f"{path}: no such file")
        if not path.is_file():
            raise SpecError(f"{path}: not a regular file")
        with open(path, "rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise SpecError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise SpecError(f"{path}: larger than {max_bytes // 1024 // 1024} MiB; not a spec file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    if "\0" in text:
        raise SpecError(f"{path}: contains NUL characters (UTF-16?); save it as UTF-8")
    return text.removeprefix("\ufeff")


def read_mapping(path: Path) -> dict[str, Any]:
    """Read a YAML or JSON file into a dict, with one-line errors."""
    text = read_text_file(path)
    kind = "json" if path.suffix == ".json" else path.suffix.lstrip(".") or "YAML"
    try:
        if kind == "json":
            data = json.loads(text, object_pairs_hook=_no_duplicate_json_keys)
        else:
            data = yaml.load(text, Loader=_UniqueKeyLoader)
    except (yaml.YAMLError, ValueError) as exc:  # JSONDecodeError is a ValueError
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SpecError(f"{path}: not valid {kind}: {first_line}") from None
    except RecursionError:
        raise SpecError(f"{path}: nested too deeply to be a spec") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    if _depth(data, MAX_NESTING) > MAX_NESTING:
        raise SpecError(f"{path}: nested more than {MAX_NESTING} levels deep; not a spec")
    return data


SpecKind = Literal["network", "dialogue", "recipe", "pipeline"]
_KIND_FIELDS: dict[str, SpecKind] = {
    "models": "network",
    "actors": "dialogue",
    "template": "recipe",
    "stages": "pipeline",
}


def spec_kind(data: dict[str, Any], source: str) -> SpecKind:
    """Which kind of spec a file holds, by the field only that kind has."""
    for field, kind in _KIND_FIELDS.items():
        if field in data:
            return kind
    raise SpecError(
        f"{source}: not a network (models:), dialogue (actors:), recipe (template:) or "
        "pipeline (stages:) spec"
    )


def describe_validation_error(exc: ValidationError, source: str) -> str:
    """One line: 'source: field.path: message; other.field: message' (an error is one line)."""
    problems = []
    for err in exc.errors():
        loc = ".".join(
            str(p) if str(p).isprintable() else repr(p)
            for p in err["loc"]
            if not str(p).startswith("function-")
        )
        msg = " ".join(str(err["msg"]).removeprefix("Value error, ").split())
        problems.append(f"{loc + ': ' if loc else ''}{msg}")
    return f"{source}: {'; '.join(problems)}"
