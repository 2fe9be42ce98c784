"""Local speech models through transformers' pipelines: text-to-speech and text-to-audio (VITS,
Bark, MusicGen: text in, a WAV out) and automatic speech recognition (Whisper, Wav2Vec2: a sound
in, its words out).

A recogniser hears at the rate it was trained on; a sound at another rate is resampled here
(polyphase, by scipy) rather than refused, so any WAV, FLAC or MP3 a step holds can be heard.
Generated sound is sampled, so each call is seeded from the step, like text generation.
"""

from __future__ import annotations

from math import gcd
from pathlib import Path
from typing import Any

from sandloop.models.audio import UndecodableAudio, audio_output, decode_mono, encode_wav
from sandloop.models.base import CallContext, ModelInput, ModelOutput
from sandloop.models.errors import InvalidInput, InvalidOutput
from sandloop.models.local_cache import PipelineModel
from sandloop.models.platforms.local import LocalHearingParams, LocalSpeechParams


def resampled(samples: Any, rate: int, target: int) -> Any:
    """The samples at ``target`` Hz (unchanged when already there)."""
    if rate == target:
        return samples
    from scipy.signal import resample_poly

    common = gcd(rate, target)
    return resample_poly(samples, target // common, rate // common).astype("float32")


def _frames(audio: Any) -> Any:
    """A pipeline's sound as (frames,) or (frames, channels), clipped to the range a 16-bit WAV
    holds. Pipelines give (frames,), (1, frames) or (channels, frames)."""
    import numpy as np

    samples = np.asarray(audio, dtype="float32").squeeze()
    if samples.ndim == 2:
        samples = samples.T  # channels first → frames first
    return np.clip(samples, -1.0, 1.0)


class LocalSpeechAdapter(PipelineModel):
    """Text → sound: the pipeline's waveform at its own rate, kept as a 16-bit WAV."""

    def generate(
        self, model_input: ModelInput, params: dict[str, Any], ctx: CallContext
    ) -> ModelOutput:
        from transformers import set_seed

        p = LocalSpeechParams.model_validate(params)
        if model_input.text is None:
            raise InvalidInput(f"{self.task} takes text", model=self.ref)
        text = model_input.text[-p.max_input_chars :].strip()
        if not text:
            raise InvalidInput(f"{self.task} needs words to sound", model=self.ref)
        pipe = self.pipeline()
        if ctx.seed is not None:
            set_seed(ctx.seed)
        sound = pipe(text)
        samples = _frames(sound["audio"])
        if samples.shape[0] == 0:
            raise InvalidOutput("the model made no sound", model=self.ref)
        data = encode_wav(samples, int(sound["sampling_rate"]))
        return audio_output(data, self.ref, {"input_chars": len(text)})


class LocalHearingAdapter(PipelineModel):
    """Sound → text: decoded to one channel, resampled to the model's rate, and heard."""

    def __init__(self, ref: str, source: str | Path, device: str = "cpu") -> None:
        super().__init__(ref, source, "automatic-speech-recognition", device)

    def generate(
        self, model_input: ModelInput, params: dict[str, Any], ctx: CallContext
    ) -> ModelOutput:
        from transformers import set_seed

        p = LocalHearingParams.model_validate(params)
        if model_input.data is None:
            raise InvalidInput("speech recognition takes audio", model=self.ref)
        try:
            samples, rate = decode_mono(model_input.data)
        except UndecodableAudio as exc:
            raise InvalidInput(f"not readable audio: {exc}", model=self.ref) from None
        pipe = self.pipeline()
        target = int(pipe.feature_extractor.sampling_rate)
        heard = resampled(samples[: int(p.max_seconds * rate)], rate, target)
        if ctx.seed is not None:
            set_seed(ctx.seed)
        text = str(pipe({"raw": heard, "sampling_rate": target})["text"]).strip()
        if not text:
            raise InvalidOutput("the model heard no words", model=self.ref)
        return ModelOutput(
            "text", text=text, usage={"input_seconds": round(len(heard) / target, 3)}
        )
