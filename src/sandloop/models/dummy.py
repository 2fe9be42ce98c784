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

from sandloop.keys import hash_value
from sandloop.models.base import AdapterContext, CallContext, ModelInput, ModelOutput
from sandloop.models.errors import BY_KIND, InvalidInput, ModelError, RateLimited
from sandloop.models.platforms.dummy import DummyParams

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
        p = DummyParams.model_validate(params)
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
        p = DummyParams.model_validate(params)
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
