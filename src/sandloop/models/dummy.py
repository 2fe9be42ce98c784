"""The dummy platform: deterministic, seeded stand-ins for every I/O pair.

Outputs depend only on (input, seed, vocab), never on wall time, so seeded loops are exactly
reproducible and small vocabularies fall into attractors the repeat detector can find. It can be
told to fail N times per step with a chosen failure type, to exercise retries and failure stops.
"""

from __future__ import annotations

import io
import random
import threading
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

import orjson

from sandloop.hashing import hash_value
from sandloop.models.audio import (
    UndecodableAudio,
    audio_facts,
    audio_output,
    decode_mono,
    encode_wav,
)
from sandloop.models.base import AdapterContext, CallContext, ModelInput, ModelOutput
from sandloop.models.errors import BY_KIND, InvalidInput, ModelError, RateLimited
from sandloop.models.platforms.dummy import DummyAudioParams, DummyParams

if TYPE_CHECKING:
    from sandloop.models.registry import ModelInfo

WORDS = (
    "amber",
    "balloon",
    "cedar",
    "drift",
    "ember",
    "fable",
    "glass",
    "harbor",
    "iris",
    "juniper",
    "kettle",
    "lantern",
    "meadow",
    "nectar",
    "orbit",
    "pebble",
    "quartz",
    "river",
    "saffron",
    "thistle",
    "umber",
    "velvet",
    "willow",
    "xenon",
    "yarrow",
    "zephyr",
    "anchor",
    "beacon",
    "cobalt",
    "dune",
    "echo",
    "fern",
    "granite",
    "hollow",
    "indigo",
    "jasper",
    "kelp",
    "lichen",
    "marble",
    "nimbus",
    "opal",
    "prism",
    "quill",
    "reed",
    "slate",
    "tide",
    "ultramarine",
    "vapor",
    "wren",
    "yonder",
    "zinc",
    "aurora",
    "birch",
    "canyon",
    "delta",
    "estuary",
    "falcon",
    "grove",
    "heron",
    "island",
    "jade",
    "kite",
    "lotus",
    "mesa",
)


def _choice(vocab: int, *salt: object) -> int:
    return int(hash_value([str(s) for s in salt])[:12], 16) % vocab


def phrase(index: int, n_words: int = 4) -> str:
    """The index-th phrase of the dummy language: distinct indexes give distinct phrases."""
    space = len(WORDS) ** n_words
    # An odd multiplier permutes 0..space-1 (a power of two: 64 words), so small indexes do
    # not all end in the same padding word.
    index = (index * 2654435761) % space
    words = []
    for _ in range(n_words):
        index, digit = divmod(index, len(WORDS))
        words.append(WORDS[digit])
    return " ".join(words)


# The dummy's speech: each word of its vocabulary is a tone (50 Hz apart from 200 Hz, all
# under 4 kHz, the highest pitch 8 kHz audio holds), sounded for a quarter second; hearing
# finds each quarter second's loudest pitch. So it hears back exactly what it said, and turns
# any other sound into words deterministically.
TONE_S = 0.25
LOWEST_HZ, STEP_HZ = 200.0, 50.0
MIN_RATE = 8_000
MAX_WORDS = 8


def speak(text: str, sample_rate: int) -> bytes:
    """The text's vocabulary words as tones, a WAV (other words are not sounded; no words is a
    quarter second of silence)."""
    import numpy as np

    known = {word: i for i, word in enumerate(WORDS)}
    pitches = [LOWEST_HZ + STEP_HZ * known[w] for w in text.split() if w in known]
    t = np.arange(int(TONE_S * sample_rate)) / sample_rate
    tones = [0.5 * np.sin(2 * np.pi * hz * t) for hz in pitches] or [np.zeros_like(t)]
    return encode_wav(np.concatenate(tones).astype("float32"), sample_rate)


def hear(samples: Any, sample_rate: int) -> str:
    """Each quarter second's loudest pitch as the nearest vocabulary word; quiet ones are
    skipped, and a sound with no loud part is heard as silence."""
    import numpy as np

    size = int(TONE_S * sample_rate)
    words = []
    for start in range(0, min(len(samples), 2 * MAX_WORDS * size) - size + 1, size):
        piece = samples[start : start + size]
        if float(np.sqrt(np.mean(piece**2))) < 1e-3:
            continue
        spectrum = np.abs(np.fft.rfft(piece))
        hz = float(np.argmax(spectrum[1:]) + 1) * sample_rate / size
        words.append(WORDS[min(len(WORDS) - 1, max(0, round((hz - LOWEST_HZ) / STEP_HZ)))])
    return " ".join(words) or "silence"


class DummyAdapter:
    """Dispatches on the task, so a models file can add dummy aliases (a flaky one, say)."""

    def __init__(self, ref: str, task: str | None = None) -> None:
        self.ref = ref
        self.task = task or {
            "dummy:text-to-image": "text-to-image",
            "dummy:image-to-text": "image-to-text",
        }.get(ref, "text-generation")
        # Not a parameter: a new parameter would change every dummy call's key.
        self.judge = ref.partition(":")[2].startswith("judge")
        self.params_model: type[DummyParams] = (
            DummyAudioParams if self.task == "text-to-speech" else DummyParams
        )
        self._failures: Counter[str] = Counter()
        self._lock = threading.Lock()

    def _salt(self, ctx: CallContext) -> object:
        # Unseeded runs are meant to differ each time; seeded ones to repeat exactly.
        return ctx.seed if ctx.seed is not None else random.random()

    def _maybe_fail(self, params: DummyParams, ctx: CallContext) -> None:
        with self._lock:
            if self._failures[ctx.step_key] >= params.fail_times:
                return
            self._failures[ctx.step_key] += 1
            attempt = self._failures[ctx.step_key]
        error_type = BY_KIND[params.fail_with]
        message = f"injected failure {attempt} of {params.fail_times}"
        if error_type is RateLimited:
            raise RateLimited(message, retry_after=0.01, model=self.ref)
        raise error_type(message, model=self.ref)

    def generate(
        self, model_input: ModelInput, params: dict[str, Any], ctx: CallContext
    ) -> ModelOutput:
        p = self.params_model.model_validate(params)
        if p.delay_ms:
            time.sleep(p.delay_ms / 1000)
        self._maybe_fail(p, ctx)
        return self._answer(model_input, p, ctx)

    def generate_batch(
        self, inputs: list[ModelInput], params: dict[str, Any], ctxs: list[CallContext]
    ) -> list[ModelOutput | Exception]:
        """The same answers as one call each, for one parameter check and one simulated latency
        for the whole batch: what batching buys on real hardware. A row's injected failure is
        that row's answer."""
        p = self.params_model.model_validate(params)
        if p.delay_ms:
            time.sleep(p.delay_ms / 1000)
        answers: list[ModelOutput | Exception] = []
        for model_input, ctx in zip(inputs, ctxs, strict=True):
            try:
                self._maybe_fail(p, ctx)
                answers.append(self._answer(model_input, p, ctx))
            except ModelError as exc:
                answers.append(exc)
        return answers

    def _answer(self, model_input: ModelInput, p: DummyParams, ctx: CallContext) -> ModelOutput:
        if p.script:
            return ModelOutput("text", text=p.script[ctx.index % len(p.script)])
        if self.task == "text-generation" and self.judge:
            return ModelOutput("text", text=self._verdict(model_input.text or "", ctx))
        if self.task == "text-generation":
            index = _choice(p.vocab, model_input.text, self._salt(ctx))
            text = phrase(index)
            if ctx.on_text is not None:  # streams word by word, as a chat endpoint does
                words = text.split(" ")
                for i, word in enumerate(words):
                    ctx.on_text(word if i == len(words) - 1 else word + " ")
            return ModelOutput("text", text=text)
        if self.task == "text-to-image":
            return ModelOutput("image", data=self._image(model_input.text or "", p, ctx))
        if self.task == "image-to-text":
            return ModelOutput("text", text=self._describe(model_input.data or b""))
        if self.task == "image-to-image":
            return ModelOutput("image", data=self._repaint(model_input.data or b"", p, ctx))
        if self.task == "text-to-speech":
            rate = p.sample_rate if isinstance(p, DummyAudioParams) else 16_000
            return audio_output(speak(self._say(model_input.text or "", ctx), rate), self.ref)
        if self.task == "automatic-speech-recognition":
            return ModelOutput("text", text=self._hear(model_input.data or b""))
        raise ModelError(f"the dummy platform does not do {self.task!r}", model=self.ref)

    def _verdict(self, text: str, ctx: CallContext) -> str:
        """A judge's JSON answer that depends only on what it reads (and the seed)."""
        index = _choice(5 * 2 * len(WORDS), text, ctx.seed)
        return orjson.dumps(
            {
                "score": 1 + index % 5,
                "better": "AB"[index // 5 % 2],
                "reason": f"it reads like {WORDS[index // 10]}",
            }
        ).decode()

    def _image(self, text: str, p: DummyParams, ctx: CallContext) -> bytes:
        from PIL import Image

        index = _choice(p.vocab, text, self._salt(ctx))
        colour = ((index * 97) % 256, (index * 57) % 256, (index * 31) % 256)
        buffer = io.BytesIO()
        Image.new("RGB", (p.image_size, p.image_size), colour).save(buffer, format="PNG")
        return buffer.getvalue()

    def _repaint(self, data: bytes, p: DummyParams, ctx: CallContext) -> bytes:
        """The picture, kept in size, tinted by a colour its bytes (and the seed) choose."""
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(io.BytesIO(data)) as image:
                rgb = image.convert("RGB")
        except (UnidentifiedImageError, OSError) as exc:
            raise InvalidInput(f"not a readable image: {exc}", model=self.ref) from None
        index = _choice(p.vocab, hash_value(data.hex()), self._salt(ctx))
        tint = Image.new("RGB", rgb.size, ((index * 97) % 256, (index * 57) % 256, 128))
        buffer = io.BytesIO()
        Image.blend(rgb, tint, 0.5).save(buffer, format="PNG")
        return buffer.getvalue()

    def _say(self, text: str, ctx: CallContext) -> str:
        """The words it reads aloud: its vocabulary's as they are, any other as a vocabulary
        word chosen by hash (and the seed), at most the first eight."""
        known = set(WORDS)
        salt = self._salt(ctx)
        return " ".join(
            w if w in known else WORDS[_choice(len(WORDS), w, salt)]
            for w in text.lower().split()[:MAX_WORDS]
        )

    def _hear(self, data: bytes) -> str:
        try:
            facts = audio_facts(data)
            samples, rate = decode_mono(data)
        except UndecodableAudio as exc:
            raise InvalidInput(f"not readable audio: {exc}", model=self.ref) from None
        if facts.sample_rate < MIN_RATE:
            raise InvalidInput(
                f"audio at {facts.sample_rate} Hz: the dummy hears {MIN_RATE} Hz or more",
                model=self.ref,
            )
        return hear(samples, rate)

    def _describe(self, data: bytes) -> str:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(io.BytesIO(data)) as image:
                rgb = image.convert("RGB")
                red, green, blue = rgb.resize((1, 1)).getpixel((0, 0))  # type: ignore[misc]
                width, height = rgb.size
        except (UnidentifiedImageError, OSError) as exc:
            raise InvalidInput(f"not a readable image: {exc}", model=self.ref) from None
        return f"a {width}x{height} picture, mostly #{red:02x}{green:02x}{blue:02x}"


def create(info: ModelInfo, _ctx: AdapterContext) -> DummyAdapter:
    return DummyAdapter(info.ref, info.task)
