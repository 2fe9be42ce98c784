"""The OpenAI-compatible embedder through the official client, against a local endpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sandloop.embedding import service
from sandloop.embedding.embedders import OpenAIEmbedder
from sandloop.models.errors import AuthError, Unavailable
from sandloop.storage.store import AkashicStore
from tests import openai_server


def test_embeds_in_batches_normalised_and_in_order(
    endpoint: tuple[openai_server.FakeOpenAI, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    state, url = endpoint
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret-9876")
    embedder = OpenAIEmbedder("nomic-embed-text", url, batch_size=2)
    assert embedder.name == "openai:nomic-embed-text" and embedder.dim == openai_server.DIM
    texts = ["red balloon", "red balloon sky", "tax law", "law of tax"]
    vectors = embedder.embed(texts)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1)
    expected = np.asarray([openai_server.vector(t) for t in texts], dtype=np.float32)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    assert np.allclose(vectors, expected)
    sent = state.requests[1:]  # after the dimension probe
    assert [r["body"]["input"] for r in sent] == [texts[:2], texts[2:]]
    assert all(
        r["body"] == {**r["body"], "model": "nomic-embed-text", "encoding_format": "float"}
        for r in sent
    )
    assert all(r["authorization"] == "Bearer sk-test-secret-9876" for r in state.requests)


def test_endpoint_failures_are_typed(
    endpoint: tuple[openai_server.FakeOpenAI, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    state, url = endpoint
    embedder = OpenAIEmbedder("m", url)
    state.fail_with = 401
    with pytest.raises(AuthError):
        embedder.embed(["x"])
    state.fail_with = 503
    with pytest.raises(Unavailable):
        embedder.embed(["x"])


def test_backfill_and_search_with_an_endpoint(
    endpoint: tuple[openai_server.FakeOpenAI, str], home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from _common import invocation_rows

    _, url = endpoint
    monkeypatch.setenv("OPENAI_API_KEY", "sk-never-stored-1234")
    store = AkashicStore.open(home)
    rows = invocation_rows(6)
    for i, row in enumerate(rows):
        row["output"] = ["a lighthouse in fog", "tax law reform", "red balloon"][i % 3]
    store.upsert("invocations", rows)
    embedder = OpenAIEmbedder("m", url)
    assert service.embed_and_index(store, embedder).embedded == 3  # the cache dedupes texts
    hits = service.search(store, embedder, "fog lighthouse", k=2)
    assert hits["output"].eq("a lighthouse in fog").all()
    stored = store.select("embeddings").astype(str).to_numpy().ravel()
    assert not any("sk-never-stored" in str(value) for value in stored)
