"""Vector search: sandloop's FAISS index vs the raw FAISS index it wraps, 100k × 384.

Single queries, k=10, one thread (NOTES: two threads were slower for single queries). The same
vectors and queries for both; filtered search is compared with a raw FAISS search that uses the
same ID selector, and recall@10 of IVF is measured against exact search.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

N, DIM, QUERIES, K = 100_000, 384, 200, 10


def per_second(fn: object, queries: np.ndarray) -> float:
    runs = []
    for _ in range(3):
        start = time.perf_counter()
        for q in queries:
            fn(q)  # type: ignore[operator]
        runs.append(time.perf_counter() - start)
    return len(queries) / statistics.median(runs)


def main() -> None:
    import faiss

    from sandloop.embedding.embedders import normalise
    from sandloop.storage.faiss_index import FaissIndex, SearchFilter

    faiss.omp_set_num_threads(1)
    rng = np.random.default_rng(0)
    # Clustered like real embeddings (topics), queries near stored points: unstructured
    # Gaussian vectors would make every approximate index look broken.
    centers = normalise(rng.normal(size=(2000, DIM)))
    vectors = normalise(centers[rng.integers(0, 2000, N)] + 0.04 * rng.normal(size=(N, DIM)))
    queries = normalise(vectors[:QUERIES] + 0.02 * rng.normal(size=(QUERIES, DIM)))
    meta = pd.DataFrame(
        {
            "key": [f"{i:032x}" for i in range(N)],
            "realm": ["r"] * N,
            "thread": [f"{i % 100:02d}" + "t" * 30 for i in range(N)],
            "model": ["m"] * N,
            "step": np.arange(N),
        }
    )
    ids = np.arange(N, dtype=np.int64)

    raw = faiss.IndexIDMap2(faiss.IndexFlatIP(DIM))
    raw.add_with_ids(vectors, ids)
    ours = FaissIndex(Path(tempfile.mkdtemp()) / "i", "m", DIM)
    start = time.perf_counter()
    ours.add(meta, vectors)
    add_s = time.perf_counter() - start

    raw_qps = per_second(lambda q: raw.search(q.reshape(1, -1), K), queries)
    ours_qps = per_second(lambda q: ours.search(q, K), queries)

    where = SearchFilter(thread="07")
    allowed = np.flatnonzero(meta["thread"].str.startswith("07").to_numpy())
    selector = faiss.IDSelectorBatch(allowed)
    params = faiss.SearchParameters(sel=selector)
    raw_f_qps = per_second(lambda q: raw.search(q.reshape(1, -1), K, params=params), queries)
    ours_f_qps = per_second(lambda q: ours.search(q, K, where), queries)

    truth = [set(raw.search(q.reshape(1, -1), K)[1][0]) for q in queries]

    def recall(found: list[set[int]]) -> float:
        return float(np.mean([len(f & t) / K for f, t in zip(found, truth, strict=True)]))

    def ours_ids(index: FaissIndex) -> list[set[int]]:
        return [{int(h.key, 16) for h in index.search(q, K)} for q in queries]

    ivf = FaissIndex(Path(tempfile.mkdtemp()) / "i", "m", DIM, ivf_threshold=1)
    start = time.perf_counter()
    ivf.rebuild(meta, vectors)
    ivf_build_s = time.perf_counter() - start
    ivf_qps = per_second(lambda q: ivf.search(q, K), queries)
    # the same IVF built by hand with raw FAISS: same nlist, nprobe and training data
    nlist = int(4 * N**0.5)
    raw_ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(DIM), DIM, nlist, faiss.METRIC_INNER_PRODUCT)
    raw_ivf.train(vectors)
    raw_ivf.add_with_ids(vectors, ids)
    raw_ivf.nprobe = 16
    raw_ivf_qps = per_second(lambda q: raw_ivf.search(q.reshape(1, -1), K), queries)
    raw_ivf_ids = [set(raw_ivf.search(q.reshape(1, -1), K)[1][0]) for q in queries]

    print(f"{N} vectors x {DIM}, {QUERIES} single queries, k={K}, 1 thread, median of 3")
    print(
        f"exact, no filter: raw FAISS {raw_qps:.0f} q/s, recall@10 1.000 | sandloop "
        f"{ours_qps:.0f} q/s, recall@10 {recall(ours_ids(ours)):.3f} | "
        f"ratio {ours_qps / raw_qps:.2f}x"
    )
    print(
        f"exact, thread filter (1% of vectors): raw FAISS {raw_f_qps:.0f} q/s | sandloop "
        f"{ours_f_qps:.0f} q/s | ratio {ours_f_qps / raw_f_qps:.2f}x"
    )
    print(
        f"IVF (nlist {nlist}, nprobe 16): raw FAISS {raw_ivf_qps:.0f} q/s, recall@10 "
        f"{recall(raw_ivf_ids):.3f} | sandloop {ivf_qps:.0f} q/s, recall@10 "
        f"{recall(ours_ids(ivf)):.3f} | ratio {ivf_qps / raw_ivf_qps:.2f}x | "
        f"build {ivf_build_s:.1f} s"
    )
    print(f"adding {N} vectors with metadata: {add_s:.2f} s")


if __name__ == "__main__":
    sys.exit(main())
