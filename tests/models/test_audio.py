"""Audio as a step holds it: real WAV, FLAC and MP3 bytes (written by libsndfile), the facts a
step records about them, and the dummy's speech and hearing, which round-trip exactly."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile

from sandloop.models.audio import UndecodableAudio, audio_facts, audio_output, decode_mono
from sandloop.models.base import CallContext, ModelInput
from sandloop.models.dummy import DummyAdapter
from sandloop.models.errors import InvalidInput, InvalidOutput
from sandloop.models.registry import BadParams, load_catalog
from sandloop.storage.blobs import sniff_audio_type

lookup = load_catalog(None).lookup  # the built-in catalog's


def sound(fmt: str, rate: int = 16_000, seconds: float = 0.5, channels: int = 1) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    wave = (0.3 * np.sin(2 * np.pi * 440 * t)).astype("float32")
    buffer = io.BytesIO()
    soundfile.write(buffer, np.stack([wave] * channels, axis=1), rate, format=fmt)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("fmt", "media_type"), [("WAV", "audio/wav"), ("FLAC", "audio/flac"), ("MP3", "audio/mpeg")]
)
def test_each_format_is_read_for_its_facts_and_sniffed_by_its_bytes(
    fmt: str, media_type: str
) -> None:
    data = sound(fmt, rate=22_050, seconds=0.5, channels=2)
    facts = audio_facts(data)
    assert (facts.media_type, facts.sample_rate, facts.channels) == (media_type, 22_050, 2)
    assert facts.duration_s == pytest.approx(0.5, abs=0.06)  # MP3 pads its last frame
    assert sniff_audio_type(data) == media_type
    samples, rate = decode_mono(data)
    assert rate == 22_050 and samples.ndim == 1


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"not audio at all" * 10, "not WAV, FLAC or MP3"),
        (sound("OGG"), "not WAV, FLAC or MP3"),
    ],
)
def test_undecodable_or_other_audio_is_refused_with_its_reason(data: bytes, reason: str) -> None:
    with pytest.raises(UndecodableAudio, match=reason):
        audio_facts(data)
    with pytest.raises(InvalidOutput, match="cannot be decoded"):
        audio_output(data, "m")


def test_the_dummy_hears_exactly_what_it_says_at_any_rate() -> None:
    speaker = DummyAdapter("dummy:text-to-speech", "text-to-speech")
    listener = DummyAdapter("dummy:speech-to-text", "automatic-speech-recognition")
    writer = DummyAdapter("dummy:text")
    ctx = CallContext(seed=7, step_key="s")
    for rate in (8_000, 16_000, 44_100):
        said = speaker.generate(
            ModelInput("text", text="a red balloon"), {"sample_rate": rate}, ctx
        )
        assert said.type == "audio" and said.data is not None
        assert said.metadata["audio"]["sample_rate"] == rate
        assert said.metadata["audio"]["duration_s"] == 0.75  # three words, a quarter second each
        heard = listener.generate(ModelInput("audio", data=said.data), {}, ctx).text or ""
        # it reads its vocabulary's words as they are, and others as words of it
        assert len(heard.split()) == 3 and heard.endswith(" balloon")
        phrase = writer.generate(ModelInput("text", text="x"), {}, ctx).text
        spoken = speaker.generate(ModelInput("text", text=phrase), {"sample_rate": rate}, ctx)
        assert listener.generate(ModelInput("audio", data=spoken.data), {}, ctx).text == phrase
        again = speaker.generate(
            ModelInput("text", text="a red balloon"), {"sample_rate": rate}, ctx
        )
        assert again.data == said.data
    other = speaker.generate(ModelInput("text", text="a blue kite"), {}, ctx).data
    assert other != said.data


def test_the_dummy_turns_any_sound_into_words_and_refuses_what_it_cannot_read() -> None:
    listener = DummyAdapter("dummy:speech-to-text", "automatic-speech-recognition")
    ctx = CallContext(seed=None, step_key="s")
    heard = listener.generate(ModelInput("audio", data=sound("FLAC", seconds=0.5)), {}, ctx).text
    assert heard is not None and len(heard.split()) == 2  # two quarter seconds of one tone
    silent = io.BytesIO()
    soundfile.write(silent, np.zeros(8_000, dtype="float32"), 8_000, format="WAV")
    assert listener.generate(ModelInput("audio", data=silent.getvalue()), {}, ctx).text == "silence"
    with pytest.raises(InvalidInput, match="not readable audio"):
        listener.generate(ModelInput("audio", data=b"\x89PNG not a sound"), {}, ctx)
    with pytest.raises(InvalidInput, match="4000 Hz"):
        listener.generate(ModelInput("audio", data=sound("WAV", rate=4_000)), {}, ctx)


def test_the_catalog_types_audio_tasks_and_checks_their_parameters() -> None:
    speaker, listener = lookup("dummy:text-to-speech"), lookup("dummy:speech-to-text")
    assert (speaker.input_type, speaker.output_type) == ("text", "audio")
    assert (listener.input_type, listener.output_type) == ("audio", "text")
    assert listener.refuses_rate(16_000) is None
    assert "8000–48000 Hz, not 4000 Hz" in (listener.refuses_rate(4_000) or "")
    with pytest.raises(BadParams, match="sample_rate"):
        speaker.params_for({"sample_rate": 1_000})
    # the sound's parameter is the speaking task's alone: other dummy keys are unchanged
    assert "sample_rate" not in lookup("dummy:text").params_for()


def test_image_to_image_keeps_the_size_and_repeats_under_a_seed() -> None:
    from PIL import Image

    painter = DummyAdapter("dummy:text-to-image", "text-to-image")
    ctx = CallContext(seed=3, step_key="s")
    picture = painter.generate(ModelInput("text", text="x"), {"image_size": 12}, ctx).data or b""
    repaint = DummyAdapter("dummy:image-to-image", "image-to-image")
    out = repaint.generate(ModelInput("image", data=picture), {}, ctx)
    assert out.type == "image" and out.data is not None and out.data != picture
    assert Image.open(io.BytesIO(out.data)).size == (12, 12)
    assert repaint.generate(ModelInput("image", data=picture), {}, ctx).data == out.data
    info = lookup("dummy:image-to-image")
    assert (info.input_type, info.output_type) == ("image", "image")
    with pytest.raises(InvalidInput, match="not a readable image"):
        repaint.generate(ModelInput("image", data=b"nope"), {}, ctx)
