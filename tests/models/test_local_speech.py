"""Local speech through transformers' real pipelines, with a tiny VITS and a tiny Wav2Vec2 the
tests build: sounds made, sounds heard at any rate, and a text→audio→text network offline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sandloop import api
from sandloop.config import Settings
from sandloop.loops.network.spec import RunSpec
from sandloop.models.audio import audio_facts, decode_mono, encode_wav
from sandloop.models.base import CallContext, ModelInput, ModelOutput
from sandloop.models.errors import InvalidInput
from sandloop.models.factory import get_adapter
from sandloop.models.local_speech import resampled
from sandloop.models.registry import load_catalog

lookup = load_catalog(None).lookup  # the built-in catalog's


def call(
    ref: str, model_input: ModelInput, home: Path, seed: int = 1, **params: object
) -> ModelOutput:
    adapter = get_adapter(lookup(ref), Settings.for_home(home))
    return adapter.generate(model_input, dict(params), CallContext(seed, "s"))


def tone(hz: float, rate: int, seconds: float = 1.0) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * hz * np.arange(int(seconds * rate)) / rate)).astype("float32")


def peak_hz(samples: np.ndarray, rate: int) -> float:
    return float(np.argmax(np.abs(np.fft.rfft(samples)))) * rate / len(samples)


@pytest.mark.parametrize("task", ["text-to-speech", "text-to-audio"])
def test_speech_is_a_seeded_wav_at_the_models_rate(
    tiny_local_models: dict[str, Path], home: Path, task: str
) -> None:
    ref = f"local:{tiny_local_models['tts']}@{task}"
    info = lookup(ref)
    assert (info.input_type, info.output_type) == ("text", "audio")
    words = ModelInput("text", text="a red balloon over the sea")
    first = call(ref, words, home, seed=3)
    assert first.type == "audio" and first.data
    facts = audio_facts(first.data)
    assert first.metadata == facts.metadata()
    assert (facts.media_type, facts.sample_rate, facts.channels) == ("audio/wav", 16_000, 1)
    assert facts.duration_s > 0
    assert call(ref, words, home, seed=3).data == first.data
    assert call(ref, words, home, seed=4).data != first.data  # VITS samples its noise
    assert first.usage == {"input_chars": len(words.text or "")}
    tail = call(ref, words, home, seed=3, max_input_chars=5)  # reads "e sea"
    assert tail.usage == {"input_chars": 5} and tail.data
    assert audio_facts(tail.data).duration_s < facts.duration_s


def test_a_speech_model_needs_words(tiny_local_models: dict[str, Path], home: Path) -> None:
    ref = f"local:{tiny_local_models['tts']}@text-to-speech"
    with pytest.raises(InvalidInput, match="needs words"):
        call(ref, ModelInput("text", text="   "), home)


def test_resampling_keeps_the_pitch() -> None:
    for rate, target in ((44_100, 16_000), (8_000, 16_000), (16_000, 16_000)):
        moved = resampled(tone(440.0, rate), rate, target)
        assert len(moved) == target
        assert abs(peak_hz(moved, target) - 440.0) <= 1.0


@pytest.mark.parametrize("rate", [8_000, 16_000, 44_100])
def test_a_recogniser_hears_a_sound_at_any_rate(
    tiny_local_models: dict[str, Path], home: Path, rate: int
) -> None:
    ref = f"local:{tiny_local_models['asr']}@automatic-speech-recognition"
    info = lookup(ref)
    assert (info.input_type, info.output_type) == ("audio", "text")
    assert info.sample_rates is None  # nothing is refused: it is resampled
    sound = ModelInput("audio", data=encode_wav(tone(330.0, rate, 0.5), rate))
    heard = call(ref, sound, home)
    assert (
        heard.type == "text"
        and heard.text
        and set(heard.text) <= set("abcdefghijklmnopqrstuvwxyz' ")
    )
    assert heard.usage == {"input_seconds": 0.5}
    assert call(ref, sound, home).text == heard.text


def test_a_recogniser_hears_only_the_first_seconds_asked(
    tiny_local_models: dict[str, Path], home: Path
) -> None:
    ref = f"local:{tiny_local_models['asr']}@automatic-speech-recognition"
    sound = ModelInput("audio", data=encode_wav(tone(330.0, 16_000, 2.0), 16_000))
    whole, start = call(ref, sound, home), call(ref, sound, home, max_seconds=0.5)
    assert start.usage == {"input_seconds": 0.5} and whole.usage == {"input_seconds": 2.0}
    assert len(start.text or "") < len(whole.text or "")


def test_a_recogniser_refuses_what_is_not_sound(
    tiny_local_models: dict[str, Path], home: Path
) -> None:
    ref = f"local:{tiny_local_models['asr']}@automatic-speech-recognition"
    with pytest.raises(InvalidInput, match="not readable audio"):
        call(ref, ModelInput("audio", data=b"RIFF....WAVEnot really"), home)
    with pytest.raises(InvalidInput, match="takes audio"):
        call(ref, ModelInput("text", text="words"), home)


@pytest.mark.usefixtures("prefect_api_url")
def test_a_text_audio_text_network_runs_offline_on_local_models(
    tiny_local_models: dict[str, Path], home: Path
) -> None:
    """local text-to-speech → a local recogniser → …: each sound a blob the next step hears."""
    speaker = f"local:{tiny_local_models['tts']}@text-to-speech"
    listener = f"local:{tiny_local_models['asr']}@automatic-speech-recognition"
    run = RunSpec.model_validate(
        {
            "network": {
                "name": "local-speech",
                "models": [speaker, {"model": listener, "params": {"max_seconds": 2}}],
            },
            "genesis": "a red balloon",
            "seed": 5,
            "stop": {"max_steps": 4, "stop_on_repeat": False},
        }
    )
    summary = api.run_network(run, home)
    steps = api.run_steps(summary.thread, home)
    assert summary.status == "completed" and steps["status"].eq("ok").all()
    assert steps["output_type"].tolist() == ["audio", "text", "audio", "text"]
    assert steps["input"].iloc[1] == steps["output"].iloc[0]  # the listener got the blob
    store = api.open_store(home)
    for row in steps.iloc[[0, 2]].itertuples():
        data = store.blobs.get(row.output)
        assert json.loads(row.metadata)["audio"] == audio_facts(data).metadata()["audio"]
        samples, rate = decode_mono(data)
        assert rate == 16_000 and len(samples) > 0


def test_the_local_speech_example_names_a_speaker_and_a_listener() -> None:
    """The example's hub models are resolved, not downloaded: the spec is checked offline."""
    example = Path(__file__).resolve().parents[2] / "examples" / "networks" / "speech-local.yaml"
    spec = api.load_run_spec(example, genesis="a red balloon", seed=1)
    tasks = [lookup(m.model).task for m in spec.network.models]
    assert tasks == ["text-generation", "text-to-speech", "automatic-speech-recognition"]
