"""Exports to object storage (``--out s3://bucket/prefix``): written and checked in a local
staging folder exactly as a local export is, then uploaded, so a failed check or a crash leaves
nothing half-written in the bucket."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fsspec

from sandloop.exports.paths import OutputPathError
from sandloop.storage.location import Location, LocationError, parse


def is_url(out: str | Path) -> bool:
    return "://" in str(out)


def _filesystem(location: Location) -> tuple[Any, str]:
    fs, path = fsspec.core.url_to_fs(location.url, **location.fsspec_options())
    return fs, str(path)


def check_remote(out: str, home: str, *, overwrite: bool) -> Location:
    """The destination, or OutputPathError: a scheme no store supports, a prefix that overlaps
    the home, or one that holds files already (without ``overwrite``)."""
    try:
        location = parse(out)
    except LocationError as exc:
        raise OutputPathError(f"--out {out}: {exc}") from None
    if not location.remote:
        raise OutputPathError(f"--out {out}: not an object-store URL")
    target, base = location.url.rstrip("/") + "/", home.rstrip("/") + "/"
    if target.startswith(base) or base.startswith(target):
        raise OutputPathError(
            f"--out {out}: overlaps the store's home {home}; write exports somewhere else"
        )
    fs, path = _filesystem(location)
    try:
        taken = fs.exists(path) and bool(fs.ls(path))
    except Exception as exc:
        raise OutputPathError(f"--out {out}: {str(exc).splitlines()[0][:200]}") from None
    if taken and not overwrite:
        raise OutputPathError(f"{out} exists and is not empty; pass --overwrite to replace it")
    return location


def upload(staged: Path, location: Location, *, overwrite: bool) -> None:
    """Copy a finished export folder to its destination (replacing it with ``overwrite``)."""
    fs, path = _filesystem(location)
    if overwrite and fs.exists(path):
        fs.rm(path, recursive=True)
    for file in sorted(p for p in staged.rglob("*") if p.is_file()):
        fs.put_file(str(file), f"{path}/{file.relative_to(staged).as_posix()}")
