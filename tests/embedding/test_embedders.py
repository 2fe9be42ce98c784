from __future__ import annotations

import numpy as np
import pytest

from sandloop.embedding.embedders import UnknownEmbedder, get_embedder


def test_minilm_loads_offline_from_its_package_and_ranks_by_meaning() -> None:
    embedder = get_embedder("all-MiniLM-L6-v2")
    assert embedder.dim == 384
    vectors = embedder.embed(["a red balloon in the sky", "a crimson balloon floating", "tax law"])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    cos = vectors @ vectors.T
    assert cos[0, 1] > 0.5 > cos[0, 2]
    assert get_embedder("all-MiniLM-L6-v2") is embedder  # loaded once per process


def test_hashing_embedder_is_deterministic_and_lexical() -> None:
    embedder = get_embedder("hashing-64")
    a, b, c = embedder.embed(["red balloon sky", "the red balloon", "quarterly tax filing"])
    assert embedder.dim == 64 and np.allclose(a, embedder.embed(["red balloon sky"])[0])
    assert a @ b > a @ c


def test_unknown_embedders_are_clear_errors() -> None:
    with pytest.raises(UnknownEmbedder, match="hashing-<dim>"):
        get_embedder("hashing-3")
    with pytest.raises(UnknownEmbedder, match="cannot load embedding model '/no/such/folder'"):
        get_embedder("/no/such/folder")
