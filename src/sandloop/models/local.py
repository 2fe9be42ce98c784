"""The local platform: transformers models on this machine (the sovereign default).

Causal LMs and seq2seq models (summarisation, translation, text2text) are driven through
``generate`` directly — transformers 5 has no pipelines for the seq2seq tasks — and
classifiers through their pipelines. A model is loaded once per process and reused across steps
and runs; loading dominates everything else for small models. Speech models (text-to-speech,
text-to-audio, speech recognition) are in ``local_speech``. Sampling is seeded per step from
the run's seed, so a resumed run produces what an uninterrupted one would have.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sandloop.models.base import (
    AdapterContext,
    CallContext,
    ModelAdapter,
    ModelInput,
    ModelOutput,
)
from sandloop.models.errors import InvalidInput, InvalidOutput, ModelError
from sandloop.models.io_types import AUDIO_TASKS, LABEL_TASKS, SEQ2SEQ_TASKS
from sandloop.models.local_cache import PipelineModel, cached
from sandloop.models.platforms.local import (
    GEMMA_NAME,
    LocalCaptionParams,
    LocalLabelParams,
    LocalTextParams,
)

if TYPE_CHECKING:
    from sandloop.models.registry import ModelInfo


@dataclass
class _Loaded:
    model: Any
    tokenizer: Any
    processor: Any = None


def load_text_model(source: str, device: str, seq2seq: bool = False) -> _Loaded:
    """A causal LM (continues text) or a seq2seq model (rewrites it), with its tokenizer."""

    def load(where: str) -> _Loaded:
        from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

        auto: Any = AutoModelForSeq2SeqLM if seq2seq else AutoModelForCausalLM
        model: Any = auto.from_pretrained(where)
        return _Loaded(model.to(device).eval(), AutoTokenizer.from_pretrained(where))

    loaded: _Loaded = cached("seq2seq" if seq2seq else "causal", source, device, load)
    return loaded


def load_captioner(source: str, device: str) -> _Loaded:
    def load(where: str) -> _Loaded:
        from transformers import AutoImageProcessor, AutoModelForImageTextToText, AutoTokenizer

        model: Any = AutoModelForImageTextToText.from_pretrained(where)
        images: Any = AutoImageProcessor  # typed in transformers 5.25, untyped before
        return _Loaded(
            model.to(device).eval(),
            AutoTokenizer.from_pretrained(where),
            images.from_pretrained(where),
        )

    loaded: _Loaded = cached("captioner", source, device, load)
    return loaded


def _sampling(temperature: float, top_p: float) -> dict[str, Any]:
    sampling = temperature > 0
    return {
        "do_sample": sampling,
        "temperature": temperature if sampling else None,
        "top_p": top_p if sampling else None,
        "top_k": None,
    }


def _decoding(p: LocalTextParams, pad_id: int, temperature: float) -> dict[str, Any]:
    """`generate`'s options for a text step, alone or in a batch."""
    return {
        "max_new_tokens": p.max_new_tokens,
        "min_new_tokens": min(4, p.max_new_tokens),
        "repetition_penalty": p.repetition_penalty,
        "pad_token_id": pad_id,
        **_sampling(temperature, p.top_p),
    }


def _text_streamer(tokenizer: Any, on_text: Callable[[str], None]) -> Any:
    """transformers' own streamer, its finished pieces of text passed on as `generate` makes
    them, in this thread (no second thread, as TextIteratorStreamer would need). The first
    ``put`` is the prompt (a causal LM) or the decoder's start token, and is skipped."""
    from transformers import TextStreamer

    class Passing(TextStreamer):
        def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
            if text:
                on_text(text)

    return Passing(tokenizer, skip_prompt=True, skip_special_tokens=True)


def _padded(rows: list[list[int]], pad_id: int, *, left: bool) -> Any:
    """Token rows padded to one width, with their attention mask. A causal LM continues the
    last token, so its rows are padded on the left and all end at the same position; the mask
    hides the padding (many small tokenizers have no pad token to do this themselves)."""
    import torch
    from transformers import BatchEncoding

    width = max(len(row) for row in rows)
    ids, mask = [], []
    for row in rows:
        padding = [pad_id] * (width - len(row))
        ids.append(padding + row if left else row + padding)
        ones, zeros = [1] * len(row), [0] * len(padding)
        mask.append(zeros + ones if left else ones + zeros)
    return BatchEncoding({"input_ids": torch.tensor(ids), "attention_mask": torch.tensor(mask)})


class LocalTextAdapter:
    """Text generation by a causal LM (continues the prompt) or a seq2seq model (rewrites it)."""

    def __init__(
        self, ref: str, source: str | Path, device: str = "cpu", *, seq2seq: bool = False
    ) -> None:
        self.ref = ref
        self.source = str(source)
        self.device = device
        self.seq2seq = seq2seq

    def load(self) -> None:
        load_text_model(self.source, self.device, self.seq2seq)

    def generate(
        self, model_input: ModelInput, params: dict[str, Any], ctx: CallContext
    ) -> ModelOutput:
        import torch
        from transformers import set_seed

        p = LocalTextParams.model_validate(params)
        if model_input.text is None:
            raise InvalidInput("local text models take text", model=self.ref)
        loaded = load_text_model(self.source, self.device, self.seq2seq)
        prompt = p.prefix + model_input.text[-p.max_input_chars :] + p.suffix
        encoded = loaded.tokenizer(prompt, return_tensors="pt", truncation=self.seq2seq).to(
            self.device
        )
        if ctx.seed is not None:
            set_seed(ctx.seed)
        pad_id = loaded.tokenizer.pad_token_id or loaded.tokenizer.eos_token_id
        options = _decoding(p, pad_id, p.temperature)
        if ctx.on_text is not None:
            options["streamer"] = _text_streamer(loaded.tokenizer, ctx.on_text)
        with torch.inference_mode():
            generated = loaded.model.generate(**encoded, **options)
        # A causal LM echoes the prompt before its continuation; a seq2seq decoder does not.
        prompt_len = 0 if self.seq2seq else encoded["input_ids"].shape[1]
        new_tokens = generated[0, prompt_len:]
        text = loaded.tokenizer.decode(new_tokens, skip_special_tokens=True).strip()
        if not text:
            raise InvalidOutput("the model produced only whitespace", model=self.ref)
        usage = {
            "input_tokens": int(encoded["input_ids"].shape[1]),
            "output_tokens": int((new_tokens != pad_id).sum()),
        }
        return ModelOutput("text", text=text, usage=usage)

    def generate_batch(
        self, inputs: list[ModelInput], params: dict[str, Any], ctxs: list[CallContext]
    ) -> list[ModelOutput | Exception]:
        """Greedy decoding (temperature 0) of the whole batch in one padded `generate`: each
        row gets the continuation it gets alone. Sampled rows are generated one by one, each
        under its own seed as `sandloop run` does, so a row's output never depends on which
        other threads shared its tick."""
        p = LocalTextParams.model_validate(params)
        if p.temperature > 0 or len(inputs) == 1:
            answers: list[ModelOutput | Exception] = []
            for model_input, ctx in zip(inputs, ctxs, strict=True):
                try:
                    answers.append(self.generate(model_input, params, ctx))
                except ModelError as exc:
                    answers.append(exc)
            return answers
        return self._greedy_batch(inputs, p)

    def _greedy_batch(
        self, inputs: list[ModelInput], p: LocalTextParams
    ) -> list[ModelOutput | Exception]:
        import torch

        loaded = load_text_model(self.source, self.device, self.seq2seq)
        answers: list[ModelOutput | Exception | None] = [None] * len(inputs)
        rows = []
        for i, model_input in enumerate(inputs):
            if model_input.text is None:
                answers[i] = InvalidInput("local text models take text", model=self.ref)
            else:
                rows.append((i, p.prefix + model_input.text[-p.max_input_chars :] + p.suffix))
        if rows:
            tokenizer = loaded.tokenizer
            pad_id = tokenizer.pad_token_id or tokenizer.eos_token_id
            prompts = [prompt for _, prompt in rows]
            encoded = _padded(
                tokenizer(prompts, truncation=self.seq2seq)["input_ids"],  # one call, unpadded
                pad_id,
                left=not self.seq2seq,
            ).to(self.device)
            with torch.inference_mode():
                generated = loaded.model.generate(**encoded, **_decoding(p, pad_id, 0.0))
            prompt_len = 0 if self.seq2seq else encoded["input_ids"].shape[1]
            texts = tokenizer.batch_decode(generated[:, prompt_len:], skip_special_tokens=True)
            for row, (i, _) in enumerate(rows):
                new_tokens = generated[row, prompt_len:]
                text = texts[row].strip()
                if not text:
                    answers[i] = InvalidOutput("the model produced only whitespace", model=self.ref)
                    continue
                usage = {
                    "input_tokens": int(encoded["attention_mask"][row].sum()),
                    "output_tokens": int((new_tokens != pad_id).sum()),
                }
                answers[i] = ModelOutput("text", text=text, usage=usage)
        return [a if a is not None else RuntimeError("no answer") for a in answers]


class LocalLabelAdapter(PipelineModel):
    """fill-mask, text-classification, zero-shot-classification: text in, one label (or the
    input with its mask filled) out."""

    def __init__(self, ref: str, source: str | Path, task: str, device: str = "cpu") -> None:
        if task not in LABEL_TASKS:
            raise ValueError(f"not a label task: {task}")
        super().__init__(ref, source, task, device)

    def generate(
        self, model_input: ModelInput, params: dict[str, Any], ctx: CallContext
    ) -> ModelOutput:
        p = LocalLabelParams.model_validate(params)
        if model_input.text is None:
            raise InvalidInput(f"{self.task} takes text", model=self.ref)
        pipe = self.pipeline()
        text = p.prefix + model_input.text[-p.max_input_chars :] + p.suffix
        if self.task == "zero-shot-classification":
            if not p.candidate_labels:
                raise InvalidInput("zero-shot needs candidate_labels", model=self.ref)
            label = str(pipe(text, candidate_labels=p.candidate_labels)["labels"][0])
        elif self.task == "fill-mask":
            mask = pipe.tokenizer.mask_token
            if mask not in text:
                text = f"{text} {mask}"  # a loop's input has no mask: fill the next word
            label = str(pipe(text)[0]["sequence"])
        else:
            label = str(pipe(text, truncation=True)[0]["label"])
        if not label.strip():
            raise InvalidOutput("the model produced an empty label", model=self.ref)
        return ModelOutput("text", text=label.strip())


class LocalCaptionAdapter:
    """Image captioning (image→text) by a vision encoder-decoder such as BLIP or ViT-GPT2."""

    def __init__(self, ref: str, source: str | Path, device: str = "cpu") -> None:
        self.ref, self.source, self.device = ref, str(source), device

    def load(self) -> None:
        load_captioner(self.source, self.device)

    def generate(
        self, model_input: ModelInput, params: dict[str, Any], ctx: CallContext
    ) -> ModelOutput:
        import torch
        from PIL import Image, UnidentifiedImageError
        from transformers import set_seed

        p = LocalCaptionParams.model_validate(params)
        if model_input.data is None:
            raise InvalidInput("captioning models take an image", model=self.ref)
        try:
            image = Image.open(io.BytesIO(model_input.data)).convert("RGB")
        except UnidentifiedImageError:
            raise InvalidInput("the input is not a readable image", model=self.ref) from None
        loaded = load_captioner(self.source, self.device)
        pixels = loaded.processor(images=image, return_tensors="pt").pixel_values.to(self.device)
        if ctx.seed is not None:
            set_seed(ctx.seed)
        with torch.inference_mode():
            generated = loaded.model.generate(
                pixel_values=pixels,
                max_new_tokens=p.max_new_tokens,
                min_new_tokens=min(4, p.max_new_tokens),
                **_sampling(p.temperature, p.top_p),
            )
        text = loaded.tokenizer.decode(generated[0], skip_special_tokens=True).strip()
        if not text:
            raise InvalidOutput("the model produced an empty caption", model=self.ref)
        return ModelOutput("text", text=text, usage={"output_tokens": int(generated.shape[1])})


def create(info: ModelInfo, ctx: AdapterContext) -> ModelAdapter:
    source = info.model_id
    if source == GEMMA_NAME:
        from sandloop.models.gemma import ensure_gemma_folder

        settings = ctx.settings
        source = str(
            settings.gemma_folder or ensure_gemma_folder(settings.models_path, ctx.announce)
        )
    device = ctx.settings.device
    if info.task in LABEL_TASKS:
        return LocalLabelAdapter(info.ref, source, info.task, device)
    if info.task == "image-to-text":
        return LocalCaptionAdapter(info.ref, source, device)
    if info.task in AUDIO_TASKS:
        from sandloop.models.local_speech import LocalHearingAdapter, LocalSpeechAdapter

        if info.input_type == "audio":
            return LocalHearingAdapter(info.ref, source, device)
        return LocalSpeechAdapter(info.ref, source, info.task, device)
    seq2seq = info.task in SEQ2SEQ_TASKS
    return LocalTextAdapter(info.ref, source, device, seq2seq=seq2seq)
