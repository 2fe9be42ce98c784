"""Image embedding: sandloop's CLIP embedder and its back-fill against bare transformers on the
same random-weight CLIP (built here, 224 px input as real CLIPs take), in one run.

- embed: `ClipEmbedder.embed_images` on PNG bytes against PIL decode + `CLIPImageProcessor` +
  `get_image_features` + normalising, written by hand;
- back-fill: `embed_and_index` of as many image steps (read the blobs, embed, upsert the vectors
  into LanceDB, add them to FAISS) in a fresh store, against the same bare embedding;
- query: `ClipEmbedder.embed` of one text against the bare tokenizer + `get_text_features`;
- converge: what the convergence stop pays per image step (`service.image_vectors`: read the
  blob by key, embed it) against the bare embedding of one picture already in memory.

The model is small, so the ratios are an upper bound on what sandloop adds to a real CLIP.

    .venv/bin/python benchmarks/bench_image_embed.py [--images 128] [--repeat 5]
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
from pathlib import Path
from typing import Any

from _common import invocation_rows, median_seconds

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def build_small_clip(folder: Path) -> Path:
    """The tests' tiny CLIP tokenizer with a 224 px, 2-layer vision tower."""
    import torch
    from tests.tiny_models import _roberta_tokenizer
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    tokenizer = _roberta_tokenizer()
    torch.manual_seed(0)
    tower = {"hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2}
    config = CLIPConfig(
        text_config={
            **tower,
            "vocab_size": len(tokenizer),
            "num_attention_heads": 4,
            "max_position_embeddings": 77,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        vision_config={**tower, "image_size": 224, "patch_size": 32, "num_attention_heads": 4},
        projection_dim=64,
    )
    CLIPModel(config).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    CLIPImageProcessor().save_pretrained(str(folder))  # CLIP's own: resize 224, crop 224
    return folder


def pictures(n: int) -> list[bytes]:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)).save(buffer, "PNG")
        out.append(buffer.getvalue())
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    import numpy as np
    import torch
    from PIL import Image
    from transformers import CLIPImageProcessor, CLIPModel, PreTrainedTokenizerFast

    from sandloop.embedding import service
    from sandloop.embedding.embedders import ClipEmbedder
    from sandloop.storage.store import AkashicStore

    root = Path(tempfile.mkdtemp(prefix="bench-clip-"))
    folder = build_small_clip(root / "clip")
    images = pictures(args.images)
    ours = ClipEmbedder(str(folder))
    model = CLIPModel.from_pretrained(str(folder)).eval()
    processor = CLIPImageProcessor.from_pretrained(str(folder))
    tokenizer = PreTrainedTokenizerFast.from_pretrained(str(folder))

    def bare_images() -> Any:
        with torch.inference_mode():
            decoded = [Image.open(io.BytesIO(b)).convert("RGB") for b in images]
            rows = []
            for start in range(0, len(decoded), 32):
                pixels = processor(images=decoded[start : start + 32], return_tensors="pt")
                rows.append(model.get_image_features(**pixels).pooler_output.numpy())
        matrix = np.vstack(rows)
        return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)

    def bare_query() -> Any:
        with torch.inference_mode():
            encoded = tokenizer(["a red balloon over the sea"], return_tensors="pt")
            vector = model.get_text_features(**encoded).pooler_output.numpy()
        return vector / np.linalg.norm(vector, axis=1, keepdims=True)

    ours_vectors = ours.embed_images(images)
    assert np.allclose(ours_vectors, bare_images(), atol=1e-4), "not the model's own vectors"

    homes = iter(range(10_000))

    def backfill() -> None:
        store = AkashicStore.open(root / f"home-{next(homes)}")
        rows = invocation_rows(len(images))
        for row, data in zip(rows, images, strict=True):
            row["output_type"], row["output"] = "image", store.blobs.put(data)
        store.upsert("invocations", rows)
        report = service.embed_and_index(store, ours)
        assert report.indexed == len(images)

    # each back-fill is into a fresh store, so no vector is found cached
    results = [
        (
            f"embed {args.images} PNGs",
            median_seconds(lambda: ours.embed_images(images), args.repeat),
            median_seconds(bare_images, args.repeat),
        ),
        (
            f"back-fill {args.images} image steps",
            median_seconds(backfill, args.repeat),
            median_seconds(bare_images, args.repeat),
        ),
        (
            "embed one text query",
            median_seconds(lambda: ours.embed(["a red balloon over the sea"]), args.repeat * 20),
            median_seconds(bare_query, args.repeat * 20),
        ),
    ]
    step_store = AkashicStore.open(root / "converge")
    one = step_store.blobs.put(images[0])
    per_step = service.image_vectors(step_store, ours)
    single = images[:1]

    def bare_one() -> Any:
        with torch.inference_mode():
            pixels = processor(
                images=[Image.open(io.BytesIO(single[0])).convert("RGB")], return_tensors="pt"
            )
            vector = model.get_image_features(**pixels).pooler_output.numpy()
        return vector / np.linalg.norm(vector, axis=1, keepdims=True)

    results.append(
        (
            "converge: one picture per step",
            median_seconds(lambda: per_step([one]), args.repeat * 20),
            median_seconds(bare_one, args.repeat * 20),
        )
    )
    print(f"median of {args.repeat}+ runs, CPU, random-weight CLIP (224 px, 2+2 layers)")
    for name, mine, bare in results:
        print(
            f"{name:32s} sandloop {mine * 1000:8.1f} ms  bare {bare * 1000:8.1f} ms  "
            f"{mine / bare:.2f}x"
        )


if __name__ == "__main__":
    main()
