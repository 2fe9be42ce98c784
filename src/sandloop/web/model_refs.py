"""Which models a stranger's request may name: a model reference that is a path on this
server (``local:/any/folder``, ``llamacpp:/x/y.gguf``) must lie under the home's models folder.

A client's request never names a file on the server; a model folder or GGUF is a file. The
check is on the text alone, before anything is looked up, so the refusal is the same whether
the path exists or not: a stranger learns nothing of the server's disk from it.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sandloop.loops.spec_files import SpecError


def looks_like_path(name: str) -> bool:
    """A model name that names a place on disk rather than a hub id (``org/name``)."""
    return (
        name.startswith(("/", "~", ".", "\\"))
        or "\\" in name
        or ".." in name.split("/")
        or name.lower().endswith((".gguf", ".bin", ".safetensors"))
    )


def check_served_refs(refs: Iterable[str], models_root: Path, where: str) -> None:
    """Refuse (SpecError, one line) a path reference outside ``models_root``."""
    root = posixpath.normpath(str(models_root))
    for ref in refs:
        _, _, name = ref.partition(":")
        if not looks_like_path(name):
            continue
        if name.startswith("/"):
            inside = posixpath.normpath(name)
            if inside.startswith(root + "/"):
                continue
        raise SpecError(
            f"{where}: over HTTP or MCP a model given by path must be under this server's "
            f"models folder; name a model from GET /v1/models instead of {ref[:80]!r}"
        )


def network_refs(network: Any) -> list[str]:
    """The model references of a network given as a mapping (each a string or {model})."""
    models = network.get("models") if isinstance(network, dict) else None
    if not isinstance(models, list):
        return []
    return [_ref(entry) for entry in models if _ref(entry)]


def dialogue_refs(dialogue: Any) -> list[str]:
    refs = []
    for key in ("actors", "judge", "moderator"):
        found = dialogue.get(key) if isinstance(dialogue, dict) else None
        for entry in found if isinstance(found, list) else [found]:
            if _ref(entry):
                refs.append(_ref(entry))
    return refs


def _ref(entry: Any) -> str:
    if isinstance(entry, str):
        return entry
    if isinstance(entry, dict) and isinstance(entry.get("model"), str):
        return str(entry["model"])
    return ""
