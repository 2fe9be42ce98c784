"""The replicate platform's sounds and edits through the official client, against the local
Replicate API: music and speech come back as WAV files downloaded at once, sounds go up as data
URLs with their media type, an edit reads its image from the field the model names, and a
text→audio→text network runs end to end."""

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
from sandloop.models.registry import load_catalog
from sandloop.models.replicate_adapter import ReplicateAdapter
from tests import fake_audio, fake_images
from tests.replicate_server import FakeReplicate

lookup = load_catalog(None).lookup  # the built-in catalog's

MUSIC = "replicate:meta/musicgen"
WHISPER = "replicate:openai/whisper"
KONTEXT = "replicate:black-forest-labs/flux-kontext-pro"


def adapter(replicate_api: FakeReplicate, ref: str) -> ReplicateAdapter:
    info = lookup(ref)
    return ReplicateAdapter(ref, info.model_id, info.task, replicate_api.url, poll_interval_s=0)


def test_the_catalog_names_music_speech_recognition_and_edits() -> None:
    kinds = {ref: (lookup(ref).input_type, lookup(ref).output_type) for ref in (MUSIC, WHISPER)}
    assert kinds == {MUSIC: ("text", "audio"), WHISPER: ("audio", "text")}
    edit = lookup(KONTEXT)
    assert (edit.input_type, edit.output_type) == ("image", "image")
    assert edit.default_params["image_field"] == "input_image"


def test_music_is_downloaded_at_once_and_described(replicate_api: FakeReplicate) -> None:
    info = lookup(MUSIC)
    out = adapter(replicate_api, MUSIC).generate(
        ModelInput("text", text="a slow waltz"), info.params_for(), CallContext(1, "s")
    )
    sound = fake_audio.tone_for("a slow waltz")
    assert out.type == "audio" and out.data == sound and replicate_api.downloads == 1
    assert out.metadata == audio_facts(sound).metadata()
    assert out.usage["prediction_id"] == "p0"
    sent = replicate_api.requests[0]
    assert sent["path"] == "/v1/models/meta/musicgen/predictions"
    assert sent["body"]["input"] == {
        "output_format": "wav",
        "duration": 8,
        "prompt": "a slow waltz",
    }


def test_a_sound_goes_up_as_a_data_url_and_its_transcription_comes_back(
    replicate_api: FakeReplicate,
) -> None:
    sound = fake_audio.tone_for("three short words", "flac")
    out = adapter(replicate_api, WHISPER).generate(
        ModelInput("audio", data=sound), {}, CallContext(1, "s")
    )
    assert out.type == "text" and out.text == f"{fake_audio.seconds_of(sound):.2f} seconds of sound"
    url = replicate_api.requests[0]["body"]["input"]["audio"]
    assert url.startswith("data:audio/flac;base64,")
    assert base64.b64decode(url.partition(",")[2]) == sound


def test_an_undecodable_sound_is_refused_before_any_upload(replicate_api: FakeReplicate) -> None:
    with pytest.raises(errors.InvalidInput, match="not readable audio") as info:
        adapter(replicate_api, WHISPER).generate(
            ModelInput("audio", data=b"RIFF not really a wave"), {}, CallContext(1, "s")
        )
    assert not errors.is_retryable(info.value) and replicate_api.requests == []


def test_music_that_is_not_audio_is_invalid_output(replicate_api: FakeReplicate) -> None:
    """A model answering with a picture where a sound was due: a retry would get a picture."""
    ref = "replicate:someone/painter@text-to-speech"
    music = ReplicateAdapter(ref, "someone/painter", "text-to-speech", replicate_api.url)
    with pytest.raises(errors.InvalidOutput, match="cannot be decoded"):
        music.generate(ModelInput("text", text="hello"), {}, CallContext(1, "s"))


def test_an_edit_reads_its_image_from_the_models_field(replicate_api: FakeReplicate) -> None:
    picture = fake_images.png_for("a harbour")
    params = lookup(KONTEXT).params_for({"input": {"prompt": "at night"}})
    out = adapter(replicate_api, KONTEXT).generate(
        ModelInput("image", data=picture), params, CallContext(1, "s")
    )
    assert out.type == "image" and out.data == fake_images.edited(picture, "at night")
    sent = replicate_api.requests[0]["body"]["input"]
    assert sorted(sent) == ["input_image", "prompt"]
    assert sent["input_image"].startswith("data:image/png;base64,")


@pytest.mark.usefixtures("prefect_api_url")
def test_a_text_audio_text_network_on_replicate(
    replicate_api: FakeReplicate, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SANDLOOP_REPLICATE_BASE_URL", replicate_api.url)
    run = RunSpec.model_validate(
        {
            "network": {"name": "radio", "models": [MUSIC, WHISPER, "dummy:text"]},
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
        sound = store.blobs.get(row.output)
        assert sound == fake_audio.tone_for(row.input)
        assert json.loads(row.metadata)["audio"] == audio_facts(sound).metadata()["audio"]
    assert steps["output"].iloc[1] == "a red balloon over the sea"
    assert steps["output"].iloc[4] == steps["input"].iloc[3]
    written = b"".join(p.read_bytes() for p in home.rglob("*") if p.is_file())
    assert b"/files/p" not in written  # the sounds' URLs are not recorded, only their blobs


@pytest.mark.slow  # a second network run on the same fake server
@pytest.mark.usefixtures("prefect_api_url")
def test_the_dusk_example_draws_edits_and_captions(
    replicate_api: FakeReplicate, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SANDLOOP_REPLICATE_BASE_URL", replicate_api.url)
    example = Path(__file__).resolve().parents[2] / "examples/networks/dusk-replicate.yaml"
    network = api.load_network(example)
    run = RunSpec.model_validate(
        {"network": network.model_dump(), "genesis": "a red balloon", "stop": {"max_steps": 6}}
    )
    summary = api.run_network(run, home)
    assert summary.status == "completed"
    steps = api.run_steps(summary.thread, home)
    assert steps["output_type"].tolist() == ["image", "image", "text"] * 2
    store = api.open_store(home)
    drawn, dusk = (store.blobs.get(k) for k in steps["output"].iloc[:2])
    assert dusk == fake_images.edited(drawn, "the same scene at dusk, lamps lit")
    assert steps["output"].iloc[2] == fake_images.caption_for(dusk)
    assert steps["input"].iloc[3] == steps["output"].iloc[2]
