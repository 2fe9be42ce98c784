"""Content-addressed blobs (images, audio) through fsspec: a local folder or any fsspec URL.

A blob's name is the BLAKE2b hash of its bytes, stored at ``<root>/<h[:2]>/<h>``, so writing the
same image twice is a no-op and records hold the hash, never a URL that can expire.
"""

from __future__ import annotations

from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from sandloop.hashing import hash_bytes


class BlobStore:
    def __init__(self, root: str, **storage_options: Any) -> None:
        """``storage_options``: fsspec's for the root's filesystem (s3fs's endpoint, keys)."""
        self.root = root.rstrip("/")
        self.fs, self._base = fsspec.core.url_to_fs(self.root, **storage_options)

    def path(self, blob_hash: str) -> str:
        return f"{self._base}/{blob_hash[:2]}/{blob_hash}"

    def url(self, blob_hash: str) -> str:
        """Where a person or program finds the blob: a path locally, ``s3://…`` remotely."""
        path = self.path(blob_hash)
        return path if isinstance(self.fs, LocalFileSystem) else str(self.fs.unstrip_protocol(path))

    def put(self, data: bytes) -> str:
        blob_hash = hash_bytes(data)
        target = self.path(blob_hash)
        if self.fs.exists(target):
            return blob_hash
        if not isinstance(self.fs, LocalFileSystem):
            self.fs.pipe_file(target, data)  # an object put is atomic: no reader sees half
            return blob_hash
        self.fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
        partial = f"{target}.partial"
        with self.fs.open(partial, "wb") as handle:
            handle.write(data)
        self.fs.mv(partial, target)
        return blob_hash

    def get_many(self, hashes: list[str]) -> list[bytes | None]:
        """Many blobs at once, None for a missing one. Locally a plain read per file (fsspec's
        open costs as much again as the read); remotely one ``cat``, which fetches concurrently."""
        paths = [self.path(h) for h in hashes]
        if isinstance(self.fs, LocalFileSystem):
            return [_read_local(path) for path in paths]
        if not paths:
            return []
        found = self.fs.cat(paths, on_error="return")  # keyed by the path, stripped
        read: list[bytes | None] = []
        for path in paths:
            data = found.get(self.fs._strip_protocol(path))
            if isinstance(data, FileNotFoundError):
                data = None
            elif isinstance(data, BaseException):  # not a missing blob: the store is unreachable
                raise data
            read.append(data)
        return read

    def get(self, blob_hash: str) -> bytes:
        with self.fs.open(self.path(blob_hash), "rb") as handle:
            data: bytes = handle.read()
        return data


def _read_local(path: str) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


def sniff_media_type(data: bytes) -> str | None:
    """A blob's type from its first bytes (blobs are stored without one)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    return None


#: The media types a blob may be sniffed as, with the file suffix each is written out with.
MEDIA_SUFFIXES = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/webp": ".webp",
    "image/gif": ".gif",
    "audio/wav": ".wav",
    "audio/flac": ".flac",
    "audio/mpeg": ".mp3",
}


def blob_media_type(data: bytes) -> str:
    """What a reader is told a blob is: an image's or a sound's type, else bytes."""
    return sniff_media_type(data) or sniff_audio_type(data) or "application/octet-stream"


def sniff_audio_type(data: bytes) -> str | None:
    """An audio blob's type from its first bytes: the three a step may hold."""
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "audio/wav"
    if data.startswith(b"fLaC"):
        return "audio/flac"
    if data.startswith(b"ID3") or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0):
        return "audio/mpeg"
    return None
