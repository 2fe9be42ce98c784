"""A text→audio→text network as a user runs it (in-process, against the session's Prefect
server): the run, `sandloop show`, an export that counts the sounds it leaves out, and each
bad audio input as one `error:` line."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
import yaml
from click.testing import Result
from typer.testing import CliRunner

from sandloop.cli import app
from tests.e2e.test_cli import ROOT

SPEECH = str(ROOT / "examples" / "networks" / "speech.yaml")

pytestmark = pytest.mark.usefixtures("prefect_api_url")


def cli(home: Path, *args: str) -> Result:
    return CliRunner().invoke(
        app, list(args), env={"SANDLOOP_HOME": str(home), "COLUMNS": "200"}, prog_name="sandloop"
    )


def test_a_speech_network_runs_shows_its_sounds_and_exports_its_text(
    home: Path, tmp_path: Path
) -> None:
    ran = cli(home, "run", SPEECH, "--genesis", "a red balloon", "--seed", "2", "--max-steps", "6")
    assert ran.exit_code == 0, ran.output
    thread = ran.stdout.split("thread ")[-1].split()[0]
    shown = cli(home, "show", thread[:8]).stdout
    assert shown.count("<audio 1.00 s at 16000 Hz") == 2  # four words, a quarter second each
    full = cli(home, "show", thread[:8], "--full").stdout
    assert "audio 1.00 s at 16000 Hz" in full and str(home) in full  # the blob's path
    steps = json.loads(cli(home, "show", thread[:8], "--json").stdout)["steps"]
    assert [s["output_type"] for s in steps] == ["text", "audio", "text"] * 2

    assert cli(home, "snapshot", "create", "--name", "speech").exit_code == 0
    out = tmp_path / "ds"
    exported = cli(home, "export", "speech", "--format", "sharegpt", "--out", str(out))
    assert exported.exit_code == 0, exported.output
    manifest = json.loads((out / "manifest.json").read_text())
    # of six steps: two speak (text→audio) and two hear (audio→text); two are text→text
    assert manifest["skipped"]["audio_exchange_not_exported"] == 4
    assert sum(manifest["counts"][s]["examples"] for s in ("train", "validation")) == 2


def wav(path: Path, rate: int) -> str:
    buffer = io.BytesIO()
    soundfile.write(buffer, np.zeros(rate, dtype="float32"), rate, format="WAV")
    path.write_bytes(buffer.getvalue())
    return str(path)


def test_bad_audio_inputs_are_one_line_naming_the_file(home: Path, tmp_path: Path) -> None:
    hear = tmp_path / "hear.yaml"
    hear.write_text(
        yaml.safe_dump({"name": "hear", "models": ["dummy:speech-to-text", "dummy:text-to-speech"]})
    )
    after_image = tmp_path / "after-image.yaml"
    after_image.write_text(
        yaml.safe_dump({"name": "mixed", "models": ["dummy:text-to-image", "dummy:speech-to-text"]})
    )
    garbled = tmp_path / "garbled.wav"
    garbled.write_bytes(b"RIFF....WAVEnot really")
    for args, says in (
        ([str(hear), "--genesis", str(garbled)], f"{garbled} cannot be decoded"),
        ([str(hear), "--genesis", wav(tmp_path / "low.wav", 4_000)], "not 4000 Hz; resample"),
        ([str(hear), "--genesis", "just words"], "takes audio; pass the path of an audio file"),
        ([str(after_image), "--genesis", "hi"], "model 1 (dummy:speech-to-text) takes audio"),
    ):
        result = cli(home, "run", *args)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.exit_code == 2, result.output
        assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], lines
        assert "Traceback" not in result.output
    assert not (home / "db").exists() or cli(home, "runs", "--json").stdout.strip() == "[]"
