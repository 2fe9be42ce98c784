"""Embedding throughput: sandloop's back-fill vs raw sentence-transformers `encode`.

2,000 distinct texts of ~30 words with all-MiniLM-L6-v2 on the CPU. sandloop's path adds the
cache lookup, the `embeddings` table upsert and the FAISS add; the raw path only encodes.
Then the cost of a second `sandloop embed` (nothing left to do), and of a back-fill whose rows
all repeat already-embedded texts (every text a cache hit).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import invocation_rows

N = 2000
BATCH = 64


def main() -> None:
    import numpy as np

    from sandloop.embedding.embedders import get_embedder
    from sandloop.embedding.service import embed_and_index
    from sandloop.models.dummy import WORDS
    from sandloop.storage.store import AkashicStore

    rng = np.random.default_rng(0)
    words = list(WORDS[:12])
    texts = [" ".join(rng.choice(words, 30)) + f" {i}" for i in range(N)]
    embedder = get_embedder("all-MiniLM-L6-v2")
    model = embedder._model  # type: ignore[attr-defined]
    model.encode(texts[:64], batch_size=64)  # warm-up

    start = time.perf_counter()
    model.encode(texts, batch_size=BATCH, normalize_embeddings=True, convert_to_numpy=True)
    raw_s = time.perf_counter() - start

    store = AkashicStore.open(Path(tempfile.mkdtemp()))

    def record_texts(thread: str, offset: int) -> None:
        rows = invocation_rows(N, thread=thread, offset=offset)
        for row, text in zip(rows, texts, strict=True):
            row["output"] = text
        store.upsert("invocations", rows)

    record_texts("b" * 32, 0)
    start = time.perf_counter()
    report = embed_and_index(store, embedder, batch_size=BATCH)
    ours_s = time.perf_counter() - start
    assert report.embedded == N

    start = time.perf_counter()
    second = embed_and_index(store, embedder, batch_size=BATCH)
    second_s = time.perf_counter() - start
    assert second.embedded == second.indexed == 0

    record_texts("c" * 32, N)  # the same texts again, in another thread: all cache hits
    start = time.perf_counter()
    cached = embed_and_index(store, embedder, batch_size=BATCH)
    cached_s = time.perf_counter() - start
    assert cached.reused == N and cached.embedded == 0

    print(f"{N} texts of ~30 words, all-MiniLM-L6-v2 fp32, CPU, batch {BATCH}")
    print(f"raw sentence-transformers encode: {N / raw_s:7.0f} texts/s")
    print(
        f"sandloop embed (cache, store, index): {N / ours_s:7.0f} texts/s "
        f"| ratio {raw_s / ours_s:.2f}x"
    )
    print(
        f"second sandloop embed (nothing to do): {second_s:.2f} s ({second_s / ours_s:.1%} "
        "of the first)"
    )
    print(
        f"back-fill of {N} rows whose texts are all cached: {cached_s:.2f} s, "
        f"{N / cached_s:.0f} rows/s (no model calls)"
    )


if __name__ == "__main__":
    main()
