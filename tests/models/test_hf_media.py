"""The hf platform's sounds and edits through `huggingface_hub.InferenceClient`, against the local
Inference API: speech comes back as audio with its facts, a sound goes up as raw bytes, an edit
carries its prompt, and a text→audio→text network runs on the catalog's hf models."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from sandloop import api
from sandloop.loops.network.spec import RunSpec
from sandloop.models import errors
from sandloop.models.audio import audio_facts
from sandloop.models.base import CallContext, ModelInput
from sandloop.models.hf_inference import HFInferenceAdapter
from sandloop.models.registry import load_catalog
from tests import fake_audio, fake_images
from tests.hf_server import FakeHF

lookup = load_catalog(None).lookup  # the built-in catalog's

TTS = "facebook/mms-tts-eng"
ASR = "openai/whisper-large-v3"


@pytest.fixture(autouse=True)
def _online_to_localhost(monkeypatch: pytest.MonkeyPatch) -> None:
    """HF_HUB_OFFLINE=1 blocks InferenceClient too; these tests only reach 127.0.0.1."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


def adapter(hf_api: FakeHF, model: str, task: str) -> HFInferenceAdapter:
    hf_api.tasks[model] = task
    return HFInferenceAdapter(f"hf:{model}@{task}", model, task, hf_api.url)


def test_the_catalog_names_hf_speech_and_recognition() -> None:
    assert (lookup(f"hf:{TTS}").input_type, lookup(f"hf:{TTS}").output_type) == ("text", "audio")
    assert (lookup(f"hf:{ASR}").input_type, lookup(f"hf:{ASR}").output_type) == ("audio", "text")
    edit = lookup("hf:timbrooks/instruct-pix2pix@image-to-image")
    assert (edit.input_type, edit.output_type) == ("image", "image")


@pytest.mark.parametrize("task", ["text-to-speech", "text-to-audio"])
def test_speech_and_music_come_back_as_described_audio(hf_api: FakeHF, task: str) -> None:
    hf_api.tasks[TTS] = "text-to-speech"  # the Inference API serves both on one route
    tts = HFInferenceAdapter(f"hf:{TTS}@{task}", TTS, task, hf_api.url)
    out = tts.generate(
        ModelInput("text", text="hello there"), {"prefix": "well "}, CallContext(1, "s")
    )
    sound = fake_audio.tone_for("well hello there")
    assert out.type == "audio" and out.data == sound
    assert out.metadata == audio_facts(sound).metadata()
    assert hf_api.requests[-1]["body"]["inputs"] == "well hello there"


def test_a_sound_goes_up_as_raw_bytes(hf_api: FakeHF) -> None:
    sound = fake_audio.tone_for("two words", "flac")
    out = adapter(hf_api, ASR, "automatic-speech-recognition").generate(
        ModelInput("audio", data=sound), {}, CallContext(1, "s")
    )
    assert out.text == f"{fake_audio.seconds_of(sound):.2f} seconds of sound"
    assert hf_api.requests[-1]["body"] == sound


def test_an_undecodable_sound_is_refused_before_any_upload(hf_api: FakeHF) -> None:
    with pytest.raises(errors.InvalidInput, match="not readable audio") as info:
        adapter(hf_api, ASR, "automatic-speech-recognition").generate(
            ModelInput("audio", data=b"ID3 no frames"), {}, CallContext(1, "s")
        )
    assert not errors.is_retryable(info.value) and hf_api.requests == []


def test_speech_that_is_not_audio_is_invalid_output(hf_api: FakeHF) -> None:
    """A text-to-image model named as text-to-speech answers a PNG: a retry would too."""
    hf_api.tasks["org/painter"] = "text-to-image"
    wrong = HFInferenceAdapter(
        "hf:org/painter@text-to-speech", "org/painter", "text-to-speech", hf_api.url
    )
    with pytest.raises(errors.InvalidOutput, match="cannot be decoded"):
        wrong.generate(ModelInput("text", text="hello"), {}, CallContext(1, "s"))


def test_an_edit_sends_the_image_and_its_prompt(hf_api: FakeHF) -> None:
    picture = fake_images.png_for("a harbour")
    out = adapter(hf_api, "org/pix2pix", "image-to-image").generate(
        ModelInput("image", data=picture), {"prompt": "at night"}, CallContext(1, "s")
    )
    assert out.type == "image" and out.data == fake_images.edited(picture, "at night")
    body = hf_api.requests[-1]["body"]
    assert base64.b64decode(body["inputs"]) == picture
    assert body["parameters"] == {"prompt": "at night"}


def test_a_text_where_a_sound_is_due_is_bad_input(hf_api: FakeHF) -> None:
    with pytest.raises(errors.InvalidInput, match="takes audio"):
        adapter(hf_api, ASR, "automatic-speech-recognition").generate(
            ModelInput("text", text="words"), {}, CallContext(1, "s")
        )


@pytest.mark.usefixtures("prefect_api_url")
def test_a_text_audio_text_network_on_hf(
    hf_api: FakeHF, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SANDLOOP_HF_BASE_URL", hf_api.url)
    hf_api.tasks.update({TTS: "text-to-speech", ASR: "automatic-speech-recognition"})
    hf_api.script.append("503")  # a loading model: retried
    run = RunSpec.model_validate(
        {
            "network": {"name": "hf-radio", "models": [f"hf:{TTS}", f"hf:{ASR}", "dummy:text"]},
            "genesis": "a red balloon over the sea",
            "seed": 2,
            "stop": {"max_steps": 6},
        }
    )
    summary = api.run_network(run, home)
    assert summary.status == "completed"
    steps = api.run_steps(summary.thread, home)
    assert steps["output_type"].tolist() == ["audio", "text", "text"] * 2
    blobs = api.open_store(home).blobs
    for row in steps[steps["output_type"] == "audio"].itertuples():
        assert blobs.get(row.output) == fake_audio.tone_for(row.input)
        assert json.loads(row.metadata)["audio"]["media_type"] == "audio/wav"
    assert steps["output"].iloc[1] == "a red balloon over the sea"
    assert steps["output"].iloc[4] == steps["input"].iloc[3]
    assert len(hf_api.requests) == 5  # four calls, one retried
