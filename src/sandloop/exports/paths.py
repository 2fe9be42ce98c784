"""Where an export may write: never over the store it reads, never somewhere it cannot.

An export replaces its output folder (with ``--overwrite``), so an output that is the home,
lies inside it, or contains it would replace the store with the dataset.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from sandloop.storage.errors import StoreError


class OutputPathError(StoreError):
    """An output path an export must not, or cannot, write."""


def _overlaps(out: Path, home: Path) -> bool:
    return out == home or home in out.parents or out in home.parents


def check_output(out: Path | str, home: Path | str | None, *, folder: bool) -> Path:
    """The resolved output path, or OutputPathError naming the problem. Checks only: nothing
    is left behind, so a refused export leaves no trace."""
    if not str(out).strip():
        raise OutputPathError("--out is empty; give a path")
    resolved = Path(out).expanduser().resolve()
    remote = home is not None and "://" in str(home)  # a local folder cannot overlap a bucket
    if home is not None and not remote and _overlaps(resolved, Path(home).expanduser().resolve()):
        raise OutputPathError(
            f"--out {out}: overlaps the store's home {home}; write exports somewhere else"
        )
    if resolved.exists():
        if folder and not resolved.is_dir():
            raise OutputPathError(f"--out {out}: is a file, not a folder")
        if not folder and not resolved.is_file():
            raise OutputPathError(f"--out {out}: is not a regular file")
    if not folder and not resolved.parent.exists():
        # a folder output is created with its parents; a file's folder must be there already,
        # so a mistyped directory is not made silently
        raise OutputPathError(
            f"--out {out}: the folder {resolved.parent} does not exist; create it first"
        )
    parent = resolved.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise OutputPathError(f"--out {out}: {parent} is a file, not a folder")
    _probe(out, parent)
    return resolved


def _probe(out: Path | str, folder: Path) -> None:
    """Create and remove a file where the export will create its own: permissions, a read-only
    mount or a pseudo-filesystem all say no here, before any work (as root, only trying tells)."""
    import tempfile

    try:
        handle, name = tempfile.mkstemp(prefix=".sandloop-probe-", dir=folder)
    except OSError as exc:
        raise cannot_write(out, exc) from None
    os.close(handle)
    with contextlib.suppress(OSError):
        os.unlink(name)


def cannot_write(out: Path | str, exc: OSError) -> OutputPathError:
    return OutputPathError(f"--out {out}: cannot write there: {exc.strerror or exc}")


def write_atomically(target: Path, data: bytes) -> None:
    """The whole file or none of it: a crash or a full disk never leaves half an export."""
    partial = target.with_name(f".{target.name}.partial")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial.write_bytes(data)
        partial.replace(target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
        raise cannot_write(target, exc) from None
