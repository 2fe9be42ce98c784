from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sandloop.embedding.embedders import normalise
from sandloop.storage.faiss_index import (
    DimensionMismatch,
    FaissIndex,
    IndexCorrupt,
    SearchFilter,
)

DIM = 16


def data(n: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    meta = pd.DataFrame(
        {
            "key": [f"k{i:05d}" for i in range(n)],
            "realm": [f"r{i % 2}" for i in range(n)],
            "thread": [f"t{i % 5}x" for i in range(n)],
            "model": [["dummy:text", "local:x"][i % 3 == 0] for i in range(n)],
            "step": list(range(n)),
        }
    )
    return meta, normalise(rng.normal(size=(n, DIM)))


def brute_force(
    meta: pd.DataFrame, vectors: np.ndarray, query: np.ndarray, k: int, where: SearchFilter
) -> tuple[set[str], np.ndarray]:
    """The allowed keys and the exact top-k scores, computed with NumPy."""
    mask = where.mask(meta)
    allowed = np.flatnonzero(mask) if mask is not None else np.arange(len(meta))
    scores = np.sort(vectors[allowed] @ query)[::-1][:k]
    return set(meta["key"].iloc[allowed]), scores


@pytest.mark.parametrize(
    "where",
    [
        SearchFilter(),
        SearchFilter(thread="t3"),
        SearchFilter(realm="r1", model="local:x"),
        SearchFilter(thread="t4", model="dummy:text"),
    ],
)
def test_filtered_search_equals_brute_force(tmp_path: Path, where: SearchFilter) -> None:
    meta, vectors = data(600)
    index = FaissIndex(tmp_path / "i", "m", DIM)
    assert index.add(meta, vectors) == 600
    for q in range(5):
        query = vectors[q * 7] * 0.5 + vectors[q * 11] * 0.5
        query = query / np.linalg.norm(query)
        hits = index.search(query, 10, where)
        allowed, best = brute_force(meta, vectors, query, 10, where)
        # the same scores as an exhaustive search (ties may swap), and only allowed keys
        assert np.allclose([h.score for h in hits], best, atol=1e-5)
        assert {h.key for h in hits} <= allowed
        by_key = meta.set_index("key")
        assert all(
            np.isclose(vectors[by_key.loc[h.key, "step"]] @ query, h.score, atol=1e-5) for h in hits
        )


def test_a_filter_matching_nothing_returns_nothing(tmp_path: Path) -> None:
    meta, vectors = data(20)
    index = FaissIndex(tmp_path / "i", "m", DIM)
    index.add(meta, vectors)
    assert index.search(vectors[0], 5, SearchFilter(thread="nope")) == []


def test_adds_are_incremental_and_skip_known_keys(tmp_path: Path) -> None:
    meta, vectors = data(50)
    index = FaissIndex(tmp_path / "i", "m", DIM)
    assert index.add(meta.iloc[:30], vectors[:30]) == 30
    assert index.add(meta.iloc[20:], vectors[20:]) == 20
    assert len(index) == 50
    assert index.search(vectors[45], 1)[0].key == "k00045"


def test_persists_and_reloads(tmp_path: Path) -> None:
    meta, vectors = data(40)
    index = FaissIndex(tmp_path / "i", "m", DIM)
    index.add(meta, vectors)
    index.save()
    again = FaissIndex.load(tmp_path / "i", "m", DIM)
    assert len(again) == 40 and again.search(vectors[7], 1)[0].key == "k00007"
    assert not list(tmp_path.glob(".faiss-*"))  # no staging folder left behind


def test_ivf_above_the_threshold_keeps_recall(tmp_path: Path) -> None:
    meta, vectors = data(3000)
    index = FaissIndex(tmp_path / "i", "m", DIM, ivf_threshold=1000)
    index.rebuild(meta, vectors)
    assert index.kind == "ivf"
    found = sum(index.search(vectors[i], 1)[0].key == f"k{i:05d}" for i in range(0, 3000, 30))
    assert found >= 95  # a stored vector finds itself
    filtered = index.search(vectors[3], 10, SearchFilter(thread="t3"))
    assert filtered and all(h.key in set(meta[meta.thread == "t3x"].key) for h in filtered)
    index.save()
    assert FaissIndex.load(tmp_path / "i", "m", DIM, ivf_threshold=1000).kind == "ivf"


def test_corrupt_and_mismatched_files_are_reported(tmp_path: Path) -> None:
    meta, vectors = data(10)
    index = FaissIndex(tmp_path / "i", "m", DIM)
    index.add(meta, vectors)
    index.save()
    with pytest.raises(DimensionMismatch, match="holds 16-d vectors"):
        FaissIndex.load(tmp_path / "i", "m", 32)
    (tmp_path / "i" / "index.faiss").write_bytes(b"garbage")
    with pytest.raises(IndexCorrupt, match="cannot be read"):
        FaissIndex.load(tmp_path / "i", "m", DIM)
