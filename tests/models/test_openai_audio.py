"""The openai platform's speech, transcriptions and image edits through the official client,
against the local OpenAI-compatible server: what goes up as multipart, what comes back, and a
text→audio→text and an image→image network."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sandloop import api
from sandloop.config import Settings
from sandloop.loops.network.spec import RunSpec
from sandloop.models import errors
from sandloop.models.audio import audio_facts, encode_wav
from sandloop.models.base import CallContext, ModelInput, ModelOutput
from sandloop.models.factory import get_adapter
from sandloop.models.openai_audio import OpenAISpeechAdapter, OpenAITranscriptionAdapter
from sandloop.models.openai_image import OpenAIImageEditAdapter
from sandloop.models.registry import load_catalog
from tests import fake_audio, fake_images, openai_server

lookup = load_catalog(None).lookup  # the built-in catalog's

Endpoint = tuple[openai_server.FakeOpenAI, str]
TTS = "openai:gpt-4o-mini-tts"
STT = "openai:gpt-4o-mini-transcribe"


def speak(url: str, text: str, **params: object) -> ModelOutput:
    adapter = OpenAISpeechAdapter(TTS, "gpt-4o-mini-tts", url)
    return adapter.generate(ModelInput("text", text=text), dict(params), CallContext(1, "s"))


def hear(url: str, sound: bytes, **params: object) -> ModelOutput:
    adapter = OpenAITranscriptionAdapter(STT, "gpt-4o-mini-transcribe", url)
    return adapter.generate(ModelInput("audio", data=sound), dict(params), CallContext(1, "s"))


def test_the_catalog_names_speech_transcription_and_edits(home: Path) -> None:
    assert (lookup(TTS).input_type, lookup(TTS).output_type) == ("text", "audio")
    assert (lookup(STT).input_type, lookup(STT).output_type) == ("audio", "text")
    edit = lookup("openai:gpt-image-1@image-to-image")
    assert (edit.input_type, edit.output_type) == ("image", "image")
    adapter = get_adapter(edit, Settings.for_home(home))
    assert isinstance(adapter, OpenAIImageEditAdapter)


def test_speech_is_a_wav_by_default_with_its_facts(endpoint: Endpoint) -> None:
    state, url = endpoint
    out = speak(url, "a red balloon")
    assert out.type == "audio" and out.data == fake_audio.tone_for("a red balloon", "wav")
    assert out.data is not None and out.metadata == audio_facts(out.data).metadata()
    assert out.metadata["audio"]["media_type"] == "audio/wav"
    assert out.usage == {"input_chars": len("a red balloon")}
    body = state.requests[-1]["body"]
    assert state.requests[-1]["path"] == "/v1/audio/speech"
    assert body == {
        "model": "gpt-4o-mini-tts",
        "voice": "alloy",
        "input": "a red balloon",
        "response_format": "wav",
        "speed": 1.0,
    }


@pytest.mark.parametrize(("fmt", "media_type"), [("flac", "audio/flac"), ("mp3", "audio/mpeg")])
def test_speech_in_other_formats_keeps_their_media_type(
    endpoint: Endpoint, fmt: str, media_type: str
) -> None:
    _, url = endpoint
    out = speak(url, "north wind", format=fmt)
    assert out.metadata["audio"]["media_type"] == media_type


def test_speech_sends_instructions_and_reads_only_the_tail(endpoint: Endpoint) -> None:
    state, url = endpoint
    speak(url, "one two three four", instructions="whisper", voice="nova", max_input_chars=10)
    body = state.requests[-1]["body"]
    assert body["instructions"] == "whisper" and body["voice"] == "nova"
    assert body["input"] == "three four"


def test_speech_refuses_what_it_cannot_read(endpoint: Endpoint) -> None:
    state, url = endpoint
    with pytest.raises(errors.InvalidInput, match="needs words"):
        speak(url, "   ")
    with pytest.raises(ValueError, match="format"):
        speak(url, "x", format="opus")  # a format a later step could not decode
    assert state.requests == []


def test_a_body_that_is_not_audio_is_invalid_output(endpoint: Endpoint) -> None:
    state, url = endpoint
    state.script.append("malformed")  # JSON where the sound should be
    with pytest.raises(errors.InvalidOutput, match="cannot be decoded"):
        speak(url, "x")


@pytest.mark.parametrize("fmt", ["wav", "flac", "mp3"])
def test_a_transcription_uploads_the_sound_as_its_own_format(endpoint: Endpoint, fmt: str) -> None:
    state, url = endpoint
    sound = speak(url, "heron opal kite", format=fmt).data or b""
    out = hear(url, sound, language="en", prompt="birds")
    assert out.type == "text" and out.text == "heron opal kite"
    assert out.usage == {"input_seconds": round(fake_audio.seconds_of(sound), 2)}
    body = state.requests[-1]["body"]
    extension = {"wav": "wav", "flac": "flac", "mp3": "mp3"}[fmt]
    assert body["file"]["filename"] == f"input.{extension}"
    assert body["file"]["content_type"] == audio_facts(sound).media_type
    assert body["file"]["data"] == sound
    assert (body["model"], body["language"], body["prompt"]) == (
        "gpt-4o-mini-transcribe",
        "en",
        "birds",
    )


def test_a_sound_it_did_not_speak_is_heard_as_its_length(endpoint: Endpoint) -> None:
    state, url = endpoint
    sound = encode_wav(np.zeros(8_000, dtype="float32"), 8_000)
    assert hear(url, sound).text == "1.00 seconds of sound"
    assert "language" not in state.requests[-1]["body"]  # detected unless given


def test_bad_audio_is_refused_before_any_upload(endpoint: Endpoint) -> None:
    state, url = endpoint
    with pytest.raises(errors.InvalidInput, match="not readable audio"):
        hear(url, b"not a sound at all")
    big = encode_wav(np.zeros(13_200_000, dtype="float32"), 16_000)  # 25.2 MiB
    with pytest.raises(errors.InvalidInput, match="at most 25 MB"):
        hear(url, big)
    assert state.requests == []


@pytest.mark.parametrize(
    ("mode", "error"),
    [("429", errors.RateLimited), ("500", errors.Unavailable), ("401", errors.AuthError)],
)
def test_audio_failures_are_typed(endpoint: Endpoint, mode: str, error: type) -> None:
    state, url = endpoint
    sound = speak(url, "x").data or b""
    state.script.extend([mode, mode])
    with pytest.raises(error):
        speak(url, "x")
    with pytest.raises(error):
        hear(url, sound)


def _edit(url: str, image: bytes, model: str = "gpt-image-1", **params: object) -> ModelOutput:
    adapter = OpenAIImageEditAdapter(f"openai:{model}@image-to-image", model, url)
    return adapter.generate(ModelInput("image", data=image), dict(params), CallContext(1, "s"))


def test_an_edit_uploads_the_image_with_the_prompt(endpoint: Endpoint) -> None:
    state, url = endpoint
    picture = fake_images.png_for("tree")
    out = _edit(url, picture, prompt="as a woodcut", size="512x512", quality="low")
    assert out.type == "image" and out.data == fake_images.edited(picture, "as a woodcut")
    body = state.requests[-1]["body"]
    assert state.requests[-1]["path"] == "/v1/images/edits"
    assert body["image"] == {"filename": "input.png", "content_type": "image/png", "data": picture}
    assert (body["prompt"], body["size"], body["quality"]) == ("as a woodcut", "512x512", "low")
    assert "response_format" not in body
    _edit(url, picture, model="dall-e-2")
    assert state.requests[-1]["body"]["response_format"] == "b64_json"


def test_an_image_the_endpoint_cannot_read_goes_up_as_png(endpoint: Endpoint) -> None:
    state, url = endpoint
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buffer, format="GIF")
    _edit(url, buffer.getvalue())
    sent = state.requests[-1]["body"]["image"]
    assert (sent["filename"], sent["content_type"]) == ("input.png", "image/png")
    with Image.open(io.BytesIO(sent["data"])) as image:
        assert image.format == "PNG" and image.size == (8, 8)
    with pytest.raises(errors.InvalidInput, match="not an image"):
        _edit(url, b"GIF89a but broken")


@pytest.mark.usefixtures("prefect_api_url")
def test_a_text_audio_text_network_through_the_audio_api(
    endpoint: Endpoint, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state, url = endpoint
    monkeypatch.setenv("SANDLOOP_OPENAI_BASE_URL", url)
    models = [{"model": TTS, "params": {"format": "mp3"}}, STT, "dummy:text"]
    run = RunSpec.model_validate(
        {
            "network": {"name": "spoken", "models": models},
            "genesis": "a red balloon over the sea",
            "seed": 2,
            "stop": {"max_steps": 6},
        }
    )
    summary = api.run_network(run, home)
    assert summary.status == "completed"
    steps = api.run_steps(summary.thread, home)
    assert steps["output_type"].tolist() == ["audio", "text", "text"] * 2
    store = api.open_store(home)
    for row in steps[steps["output_type"] == "audio"].itertuples():
        facts = json.loads(row.metadata)["audio"]
        assert facts == audio_facts(store.blobs.get(row.output)).metadata()["audio"]
        assert facts["media_type"] == "audio/mpeg"
    # each sound is heard back as the words it was spoken from
    assert steps["output"].iloc[1] == "a red balloon over the sea"
    assert steps["output"].iloc[4] == steps["input"].iloc[3]
    paths = [r["path"] for r in state.requests]
    assert paths == ["/v1/audio/speech", "/v1/audio/transcriptions"] * 2


@pytest.mark.usefixtures("prefect_api_url")
def test_an_image_to_image_network_keeps_each_edit(
    endpoint: Endpoint, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, url = endpoint
    monkeypatch.setenv("SANDLOOP_OPENAI_BASE_URL", url)
    edit = {"model": "openai:gpt-image-1@image-to-image", "params": {"prompt": "at night"}}
    run = RunSpec.model_validate(
        {
            "network": {
                "name": "edits",
                "models": ["dummy:text-to-image", edit, "dummy:image-to-text"],
            },
            "genesis": "a lighthouse",
            "seed": 2,
            "stop": {"max_steps": 6},
        }
    )
    steps = api.run_steps(api.run_network(run, home).thread, home)
    assert steps["output_type"].tolist() == ["image", "image", "text"] * 2
    blobs = api.open_store(home).blobs
    for i in (1, 4):
        before = blobs.get(steps["input"].iloc[i])
        assert blobs.get(steps["output"].iloc[i]) == fake_images.edited(before, "at night")
