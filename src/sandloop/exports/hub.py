"""Pushing an export folder to a Hugging Face Hub dataset repo, with the official client.

Checked before anything is sent: the folder is a complete export (its manifest's sha256s match
its files, so a half-copied or edited folder is not published as the dataset it claims to be),
the repo id is well formed and a token is at hand. ``HF_ENDPOINT`` points the client at another
Hub (the tests' local one, or a self-hosted mirror). The token is never printed or returned, and
any error text is scrubbed of it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import orjson

from sandloop.errors import SandloopError, is_unreachable
from sandloop.scrub import scrub

REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}")


class PushError(SandloopError):
    """Not an export, a bad repo id, no token, or the Hub refused."""


@dataclass(frozen=True)
class Pushed:
    repo_url: str
    commit: str
    files: int
    private: bool


def check_export(folder: Path) -> list[str]:
    """The files the manifest lists, verified; PushError names what does not match."""
    manifest_path = folder / "manifest.json"
    if not folder.is_dir() or not manifest_path.is_file() or not (folder / "README.md").is_file():
        raise PushError(
            f"{folder}: not an export folder (it needs manifest.json and README.md, as "
            "`sandloop export` writes them)"
        )
    try:
        files: dict[str, dict[str, object]] = orjson.loads(manifest_path.read_bytes())["files"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        raise PushError(f"{manifest_path}: not a sandloop manifest") from None
    for name, expected in files.items():
        path = folder / name
        if not path.is_file():
            raise PushError(f"{folder}: {name} is in the manifest but missing; export again")
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        if digest.hexdigest() != expected.get("sha256"):
            raise PushError(f"{folder}: {name} changed since it was exported; export again")
    return sorted(files)


def check_repo(repo: str) -> str:
    if not REPO_ID.fullmatch(repo):
        raise PushError(f"repo {repo[:60]!r}: give it as OWNER/NAME (letters, digits, . _ -)")
    return repo


def push(folder: Path, repo: str, token: str, *, private: bool) -> Pushed:
    """Create the dataset repo if needed and upload the export as one commit."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    files = check_export(folder)
    client = HfApi(token=token)
    try:
        url = client.create_repo(repo, repo_type="dataset", private=private, exist_ok=True)
        commit = client.upload_folder(
            repo_id=repo,
            repo_type="dataset",
            folder_path=str(folder),
            allow_patterns=[*files, "manifest.json", "README.md"],
            commit_message=f"sandloop export of {folder.name}",
        )
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        hint = {401: "; the token was refused (`sandloop keys set hf`)", 403: "; no write access"}
        line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise PushError(
            scrub(f"the Hub refused the push to {repo}: {line}{hint.get(status or 0, '')}", [token])
        ) from None
    except Exception as exc:
        if not is_unreachable(exc):
            raise
        line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise PushError(scrub(f"cannot reach the Hub for {repo}: {line}", [token])) from None
    return Pushed(str(url), str(commit.oid), len(files) + 2, private)
