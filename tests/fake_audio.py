"""What the fake remote servers speak and hear: a tone per word whose pitch comes from the word,
and a transcription that gives back the words a server spoke (any other sound is heard as its
length), so a text→audio→text loop is checkable end to end."""

from __future__ import annotations

import hashlib
import io


def tone_for(text: str, fmt: str = "wav", rate: int = 16_000) -> bytes:
    """A tenth of a second of sine per word, its pitch from the word: the same text is the same
    sound."""
    import numpy as np
    import soundfile

    pieces = []
    for word in text.split() or ["-"]:
        pitch = 200 + hashlib.sha256(word.encode()).digest()[0] * 4
        t = np.arange(rate // 10) / rate
        pieces.append(0.3 * np.sin(2 * np.pi * pitch * t))
    buffer = io.BytesIO()
    soundfile.write(buffer, np.concatenate(pieces), rate, format=fmt.upper())
    return buffer.getvalue()


def sound_key(sound: bytes) -> str:
    return hashlib.sha256(sound).hexdigest()


def heard(sound: bytes, spoken: dict[str, str]) -> str:
    """What a transcription of ``sound`` says: the words it was spoken from, if the server spoke
    it (``spoken`` maps ``sound_key`` to words); otherwise how long it is."""
    known = spoken.get(sound_key(sound))
    if known is not None:
        return known
    return f"{seconds_of(sound):.2f} seconds of sound"


def seconds_of(sound: bytes) -> float:
    import soundfile

    return float(soundfile.info(io.BytesIO(sound)).duration)
