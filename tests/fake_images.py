"""What the fake remote servers draw and see: a PNG coloured by a prompt's hash, and a caption
that names an image's size and colour, so a text→image→text loop is checkable end to end."""

from __future__ import annotations

import base64
import hashlib
import io


def png_for(prompt: str, size: int = 16) -> bytes:
    from PIL import Image

    r, g, b = hashlib.sha256(prompt.encode()).digest()[:3]
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (r, g, b)).save(buffer, format="PNG")
    return buffer.getvalue()


def caption_for(image: bytes) -> str:
    from PIL import Image

    with Image.open(io.BytesIO(image)) as picture:
        r, g, b = picture.convert("RGB").getpixel((0, 0))  # type: ignore[misc]
        return f"a {picture.width}x{picture.height} square of colour {r:02x}{g:02x}{b:02x}"


def from_data_url(url: str) -> bytes:
    return base64.b64decode(url.partition(",")[2])


def edited(image: bytes, prompt: str) -> bytes:
    """An edit: a picture of the prompt and the input's hash, so both are seen to reach it."""
    return png_for(f"{prompt} | {hashlib.sha256(image).hexdigest()[:12]}")
