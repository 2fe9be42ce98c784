"""The Elasticsearch adapter through the official client, against a local server that checks
the exact requests (mapping, bulk bodies, knn query shape). With SANDLOOP_ES_URL set, the same
flow also runs against a real cluster."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sandloop.config import Settings
from sandloop.embedding import service
from sandloop.embedding.embedders import get_embedder, normalise
from sandloop.storage import es_index
from sandloop.storage.faiss_index import DimensionMismatch, SearchFilter, VectorIndexError
from sandloop.storage.store import AkashicStore
from tests import es_server

DIM = 8


@pytest.fixture
def fake() -> Iterator[tuple[es_server.FakeElasticsearch, str]]:
    server, state, url = es_server.start()
    yield state, url
    server.shutdown()


def data(n: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(1)
    meta = pd.DataFrame(
        {
            "key": [f"k{i}" for i in range(n)],
            "realm": ["r"] * n,
            "thread": [("a" if i % 2 else "b") + "0" * 31 for i in range(n)],
            "model": ["dummy:text"] * n,
            "step": list(range(n)),
            "output": [f"text number {i}" for i in range(n)],
        }
    )
    return meta, normalise(rng.normal(size=(n, DIM)))


def test_mapping_bulk_and_knn_requests_are_exact(
    fake: tuple[es_server.FakeElasticsearch, str],
) -> None:
    state, url = fake
    client = es_index.connect(url, api_key="secret-key-1234", username=None, password=None)
    index = es_index.ElasticsearchIndex(client, "sandloop-m", "m", DIM)
    meta, vectors = data(6)
    assert index.add(meta, vectors) == 6

    create = next(r for r in state.requests if r.method == "PUT")
    assert create.path == "/sandloop-m"
    assert create.body == {"mappings": es_index.mapping(DIM)}
    assert create.body["mappings"]["properties"]["vector"] == {
        "type": "dense_vector",
        "dims": DIM,
        "index": True,
        "similarity": "cosine",
    }

    bulk = next(r for r in state.requests if r.path == "/_bulk")
    assert bulk.body[0] == {"index": {"_index": "sandloop-m", "_id": "k0"}}
    assert bulk.body[1]["key"] == "k0" and bulk.body[1]["text"] == "text number 0"
    assert bulk.body[1]["embedding_model"] == "m" and len(bulk.body[1]["vector"]) == DIM
    assert np.allclose(bulk.body[1]["vector"], vectors[0])
    assert len(bulk.body) == 12
    assert len(index) == 6

    hits = index.search(vectors[3], 2, SearchFilter(thread="a", model="dummy:text"), text="number")
    search = state.requests[-1]
    assert search.path == "/sandloop-m/_search"
    assert search.body["knn"]["field"] == "vector" and search.body["knn"]["k"] == 2
    assert search.body["knn"]["num_candidates"] == 100
    assert search.body["knn"]["filter"] == {
        "bool": {"filter": [{"prefix": {"thread": "a"}}, {"term": {"model": "dummy:text"}}]}
    }
    assert search.body["query"]["bool"]["should"] == [{"match": {"text": "number"}}]
    assert search.body["size"] == 2 and search.body["_source"] == ["key"]
    assert hits[0].key == "k3" and all(int(h.key[1:]) % 2 for h in hits)


def test_readding_is_idempotent_and_rebuild_starts_over(
    fake: tuple[es_server.FakeElasticsearch, str],
) -> None:
    state, url = fake
    index = es_index.ElasticsearchIndex(es_index.connect(url, None, None, None), "s-m", "m", DIM)
    meta, vectors = data(4)
    index.add(meta, vectors)
    index.add(meta, vectors)
    assert len(index) == 4
    index.rebuild(meta.iloc[:2], vectors[:2])
    assert len(index) == 2
    assert any(r.method == "DELETE" and r.path == "/s-m" for r in state.requests)


def test_dimension_mismatch_and_rejections_are_clear(
    fake: tuple[es_server.FakeElasticsearch, str],
) -> None:
    _, url = fake
    client = es_index.connect(url, None, None, None)
    es_index.ElasticsearchIndex(client, "s-m", "m", DIM).add(*data(2))
    with pytest.raises(DimensionMismatch, match="holds 8-d vectors"):
        len(es_index.ElasticsearchIndex(client, "s-m", "m", 16))
    with pytest.raises(VectorIndexError, match="Elasticsearch search failed"):
        es_index.ElasticsearchIndex(client, "s-m", "m", DIM)._call(
            "search", client.search, index="missing-index", query={"match_all": {}}
        )


def test_unreachable_cluster_is_one_clear_error() -> None:
    client = es_index.connect("http://127.0.0.1:9", None, None, None)
    client = client.options(max_retries=0)
    with pytest.raises(VectorIndexError, match="Elasticsearch exists failed"):
        es_index.ElasticsearchIndex(client, "s-m", "m", DIM).ensure()


def test_index_names_are_valid() -> None:
    assert es_index.index_name("sandloop", "sentence-transformers/All-MiniLM") == (
        "sandloop-sentence-transformers-all-minilm"
    )


def test_service_end_to_end_with_elasticsearch(
    fake: tuple[es_server.FakeElasticsearch, str], home: Path
) -> None:
    state, url = fake
    _end_to_end(
        home,
        Settings(
            home=home, index_backend="elasticsearch", es_url=url, es_api_key="top-secret-api-key"
        ),
    )
    # the API key travels in the Authorization header only, never in a stored or sent body
    assert not any("top-secret" in str(r.body) for r in state.requests)
    assert all(
        "top-secret" not in str(v)
        for v in AkashicStore.open(home).select("embeddings").astype(str).to_numpy().ravel()
    )


@pytest.mark.skipif(not os.environ.get("SANDLOOP_ES_URL"), reason="SANDLOOP_ES_URL not set")
def test_service_end_to_end_with_a_real_cluster(home: Path) -> None:
    _end_to_end(
        home,
        Settings(
            home=home,
            index_backend="elasticsearch",
            es_url=os.environ["SANDLOOP_ES_URL"],
            es_index_prefix=f"sandloop-test-{os.getpid()}",
        ),
    )


def _end_to_end(home: Path, settings: Settings) -> None:
    from _common import invocation_rows

    store = AkashicStore.open(home)
    rows = invocation_rows(10)
    for i, row in enumerate(rows):
        row["output"] = ["a lighthouse in fog", "tax law reform"][i % 2] + f" {i}"
    store.upsert("invocations", rows)
    embedder = get_embedder("hashing-32")
    report = service.embed_and_index(store, embedder, settings=settings)
    assert report.indexed == 10
    hits = service.search(store, embedder, "lighthouse fog", k=3, settings=settings)
    assert len(hits) == 3 and hits["output"].str.startswith("a lighthouse").all()
    rebuilt = service.rebuild_index(store, embedder, settings)
    assert rebuilt.kind == "elasticsearch" and len(rebuilt) == 10
