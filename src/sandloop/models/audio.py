"""Audio bytes crossing step boundaries: what a step records about a sound, and the check that
what reaches the blob store is one a later step can decode.

Audio is stored as the model gave it (WAV, FLAC or MP3, content-addressed like images); its
media type, sample rate, channel count and duration go into the step's metadata, so listings
and exports need not decode the blob to say what it is.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass
from typing import Any

from sandloop.errors import SandloopError
from sandloop.models.base import ModelOutput
from sandloop.models.errors import InvalidOutput

#: libsndfile's container names for the three formats a step may hold.
MEDIA_TYPES = {"WAV": "audio/wav", "WAVEX": "audio/wav", "FLAC": "audio/flac", "MP3": "audio/mpeg"}
FORMATS = "WAV, FLAC or MP3"


class UndecodableAudio(SandloopError, ValueError):
    """Bytes that are not WAV, FLAC or MP3 audio libsndfile can read."""


@dataclass(frozen=True)
class AudioFacts:
    media_type: str
    sample_rate: int
    channels: int
    duration_s: float

    def metadata(self) -> dict[str, Any]:
        return {"audio": asdict(self)}


def audio_facts(data: bytes) -> AudioFacts:
    """What the bytes are, read from their header; UndecodableAudio names why not."""
    import soundfile

    if not data:
        raise UndecodableAudio("it is empty")
    try:
        info = soundfile.info(io.BytesIO(data))
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as exc:
        raise UndecodableAudio(f"it is not {FORMATS} audio ({_first_line(exc)})") from None
    media_type = MEDIA_TYPES.get(info.format)
    if media_type is None:
        raise UndecodableAudio(f"it is {info.format_info} audio, not {FORMATS}")
    if info.frames <= 0 or info.samplerate <= 0:
        raise UndecodableAudio("it holds no samples")
    return AudioFacts(media_type, int(info.samplerate), int(info.channels), round(info.duration, 3))


def decode_mono(data: bytes) -> tuple[Any, int]:
    """The samples as one float32 channel (channels averaged), and the sample rate: what speech
    models read."""
    import soundfile

    try:
        samples, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as exc:
        raise UndecodableAudio(f"it is not {FORMATS} audio ({_first_line(exc)})") from None
    return samples.mean(axis=1), int(rate)


def encode_wav(samples: Any, sample_rate: int) -> bytes:
    """16-bit PCM WAV, the format every audio reader takes."""
    import soundfile

    buffer = io.BytesIO()
    soundfile.write(buffer, samples, sample_rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def audio_output(data: bytes, model: str, usage: dict[str, Any] | None = None) -> ModelOutput:
    """A model's audio answer with its facts, or InvalidOutput if it cannot be decoded (a retry
    of the same call would give the same bytes)."""
    try:
        facts = audio_facts(data)
    except UndecodableAudio as exc:
        raise InvalidOutput(
            f"the model returned audio that cannot be decoded: {exc}", model=model
        ) from None
    return ModelOutput("audio", data=data, usage=dict(usage or {}), metadata=facts.metadata())


def _first_line(exc: BaseException) -> str:
    """libsndfile's reason, without the "Error opening <BytesIO ...>:" that names no file."""
    line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return line.rpartition(">: ")[2].rstrip(".") or type(exc).__name__
