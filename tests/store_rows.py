"""What tests of the store's hardening share: a `runs` row and a listing of a home's files."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def run_row(thread: str, **fields: Any) -> dict[str, Any]:
    """A network run's `runs` row, running and with no steps unless ``fields`` say otherwise."""
    return {
        "thread": thread,
        "realm": "r" * 32,
        "kind": "network",
        "name": "echo",
        "spec": "{}",
        "genesis": "g",
        "seed": 1,
        "status": "running",
        "steps": 0,
        "created_at": datetime.now(UTC),
        **fields,
    }


def tree(folder: Path) -> list[tuple[str, int]]:
    """Every path under ``folder`` with its size (-1 for folders): equal listings mean nothing
    was written."""
    if not folder.exists():
        return []
    return sorted(
        (str(p.relative_to(folder)), p.stat().st_size if p.is_file() else -1)
        for p in folder.rglob("*")
    )
