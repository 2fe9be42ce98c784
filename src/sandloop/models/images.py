"""Image bytes crossing platform boundaries: as data URLs going out, checked coming back.

Remote platforms return images as base64, URLs or raw bytes; whatever the route, what reaches the
blob store must be an image a later step can open, or the step fails as ``InvalidOutput``.
"""

from __future__ import annotations

import base64
import io

from sandloop.models.errors import InvalidOutput
from sandloop.storage.blobs import sniff_media_type


def mime_type(data: bytes) -> str:
    """What a data URL says it carries: the blob store's own sniffing, so the two never
    disagree on what an image is."""
    return sniff_media_type(data) or "application/octet-stream"


def data_url(data: bytes, mime: str | None = None) -> str:
    """``mime`` names what the bytes are when they are not an image (a sound, say)."""
    encoded = base64.b64encode(data).decode("ascii")
    return f"data:{mime or mime_type(data)};base64,{encoded}"


def decode_data_url(url: str) -> bytes:
    _, _, payload = url.partition(",")
    try:
        return base64.b64decode(payload, validate=True)
    except ValueError:
        raise InvalidOutput("a data URL that is not valid base64") from None


def checked_image(data: bytes, model: str) -> bytes:
    """The bytes, if they decode as an image; otherwise the model's output is invalid."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise InvalidOutput("the model returned an empty image", model=model)
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError):
        raise InvalidOutput("the model returned bytes that are not an image", model=model) from None
    return data
