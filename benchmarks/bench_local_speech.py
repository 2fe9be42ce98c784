"""The local speech adapters against bare transformers pipeline calls on the same tiny models
(a random-weight VITS and Wav2Vec2-CTC, built here as the tests build them), in one run.

- speak: `LocalSpeechAdapter.generate` (seed, pipeline, clip, 16-bit WAV, the WAV's facts)
  against `pipe(text)` alone;
- hear: `LocalHearingAdapter.generate` on WAV bytes (decode, resample when the rate is not
  16 kHz, pipeline) against `pipe({"raw": samples, "sampling_rate": 16000})` on samples already
  decoded at 16 kHz.

The tiny models make a call cheap, so the ratios are an upper bound on what the adapters add to
a real voice or Whisper.

    .venv/bin/python benchmarks/bench_local_speech.py [--repeat 30] [--seconds 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import median_seconds

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TEXT = "a red balloon drifts over the harbour, past the lighthouse and out to the grey sea"


def median_ms(call: Callable[[], Any], repeat: int) -> float:
    call()  # warm: the first call pays for lazy imports
    return 1000 * median_seconds(call, repeat)


def tone(seconds: float, rate: int) -> Any:
    import numpy as np

    return (0.5 * np.sin(2 * np.pi * 330 * np.arange(int(seconds * rate)) / rate)).astype("float32")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    from tests.tiny_models import build_tiny_vits, build_tiny_wav2vec2
    from transformers import set_seed

    from sandloop.models.audio import encode_wav
    from sandloop.models.base import CallContext, ModelInput
    from sandloop.models.local_cache import load_pipeline
    from sandloop.models.local_speech import LocalHearingAdapter, LocalSpeechAdapter

    root = Path(tempfile.mkdtemp(prefix="bench-speech-"))
    tts, asr = build_tiny_vits(root / "tts"), build_tiny_wav2vec2(root / "asr")
    ctx = CallContext(7, "bench")

    speaker = LocalSpeechAdapter("local:tts", tts, "text-to-speech")
    speak_pipe = load_pipeline("text-to-speech", str(tts), "cpu")
    words = ModelInput("text", text=TEXT)

    def bare_speak() -> None:
        set_seed(7)
        speak_pipe(TEXT)

    rows = [
        (
            f"speak {len(TEXT)} chars",
            median_ms(lambda: speaker.generate(words, {}, ctx), args.repeat),
            median_ms(bare_speak, args.repeat),
        )
    ]
    listener = LocalHearingAdapter("local:asr", asr)
    hear_pipe = load_pipeline("automatic-speech-recognition", str(asr), "cpu")
    at_16k = tone(args.seconds, 16_000)
    for rate in (16_000, 44_100):
        sound = ModelInput("audio", data=encode_wav(tone(args.seconds, rate), rate))
        rows.append(
            (
                f"hear {args.seconds:g} s WAV at {rate} Hz",
                median_ms(lambda s=sound: listener.generate(s, {}, ctx), args.repeat),
                median_ms(lambda: hear_pipe({"raw": at_16k, "sampling_rate": 16_000}), args.repeat),
            )
        )
    print(f"median of {args.repeat} calls each, CPU, tiny random-weight models")
    for name, ours, bare in rows:
        print(
            f"{name:32s} sandloop {ours:7.2f} ms  bare pipeline {bare:7.2f} ms  {ours / bare:.2f}x"
        )


if __name__ == "__main__":
    main()
