"""The scale-out vector index: Elasticsearch through the official client.

One Elasticsearch index per embedding model, created with its mapping on first use: a
``dense_vector`` for kNN and the output text for BM25. Documents are keyed by the record key, so
re-indexing is idempotent. Like FAISS, it is rebuildable from the ``embeddings`` table.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from sandloop.embedding.embedders import Vectors
from sandloop.storage.faiss_index import DimensionMismatch, Hit, SearchFilter, VectorIndexError

BULK_CHUNK = 500


def index_name(prefix: str, embedding_model: str) -> str:
    """Elasticsearch index names are lowercase, without / \\ * ? " < > | , # : or spaces."""
    safe = re.sub(r"[^a-z0-9._-]+", "-", embedding_model.lower()).strip("-._")
    return f"{prefix}-{safe}"


def mapping(dim: int) -> dict[str, Any]:
    return {
        "properties": {
            "key": {"type": "keyword"},
            "realm": {"type": "keyword"},
            "thread": {"type": "keyword"},
            "model": {"type": "keyword"},
            "step": {"type": "long"},
            "embedding_model": {"type": "keyword"},
            "text": {"type": "text"},
            # Vectors are L2-normalised: cosine and dot product rank alike.
            "vector": {"type": "dense_vector", "dims": dim, "index": True, "similarity": "cosine"},
        }
    }


def filter_clauses(where: SearchFilter | None) -> list[dict[str, Any]]:
    if where is None:
        return []
    clauses: list[dict[str, Any]] = []
    if where.realm:
        clauses.append({"prefix": {"realm": where.realm}})
    if where.thread:
        clauses.append({"prefix": {"thread": where.thread}})
    if where.model:
        clauses.append({"term": {"model": where.model}})
    return clauses


class ElasticsearchIndex:
    kind = "elasticsearch"

    def __init__(self, client: Any, name: str, embedding_model: str, dim: int) -> None:
        self.client = client
        self.name = name
        self.embedding_model = embedding_model
        self.dim = dim
        self._ensured = False

    def _call(self, what: str, fn: Any, **kwargs: Any) -> Any:
        from elastic_transport import TransportError
        from elasticsearch import ApiError

        try:
            return fn(**kwargs)
        except (ApiError, TransportError) as exc:
            raise VectorIndexError(f"Elasticsearch {what} failed on {self.name!r}: {exc}") from None

    def ensure(self) -> None:
        """Create the index with its mapping on first use; refuse one of another dimension."""
        if self._ensured:
            return
        if self._call("exists", self.client.indices.exists, index=self.name):
            got = self._call("get_mapping", self.client.indices.get_mapping, index=self.name)
            props = got[self.name]["mappings"].get("properties", {})
            dims = props.get("vector", {}).get("dims")
            if dims != self.dim:
                raise DimensionMismatch(
                    f"Elasticsearch index {self.name!r} holds {dims}-d vectors, but "
                    f"{self.embedding_model!r} makes {self.dim}-d ones; run "
                    "`sandloop index rebuild --backend elasticsearch`"
                )
        else:
            self._call(
                "create", self.client.indices.create, index=self.name, mappings=mapping(self.dim)
            )
        self._ensured = True

    def __len__(self) -> int:
        self.ensure()
        return int(self._call("count", self.client.count, index=self.name)["count"])

    def add(self, meta: pd.DataFrame, vectors: Vectors) -> int:
        """Bulk-index documents keyed by record key (re-adding one overwrites it)."""
        if len(meta) == 0:
            return 0
        if vectors.shape[1:] != (self.dim,):
            raise DimensionMismatch(f"vectors are {vectors.shape[1:]}, the index takes {self.dim}")
        self.ensure()
        texts = meta["output"] if "output" in meta else pd.Series([None] * len(meta))
        for start in range(0, len(meta), BULK_CHUNK):
            operations: list[dict[str, Any]] = []
            stop = min(start + BULK_CHUNK, len(meta))
            for i in range(start, stop):
                row = meta.iloc[i]
                operations.append({"index": {"_index": self.name, "_id": str(row["key"])}})
                operations.append(
                    {
                        "key": str(row["key"]),
                        "realm": row["realm"],
                        "thread": row["thread"],
                        "model": row["model"],
                        "step": int(row["step"]),
                        "embedding_model": self.embedding_model,
                        "text": None if pd.isna(texts.iloc[i]) else str(texts.iloc[i]),
                        "vector": [float(x) for x in vectors[i]],
                    }
                )
            result = self._call("bulk", self.client.bulk, operations=operations)
            if result.get("errors"):
                failed = [it for it in result["items"] if "error" in next(iter(it.values()))]
                first = next(iter(failed[0].values()))["error"] if failed else "unknown"
                raise VectorIndexError(
                    f"Elasticsearch rejected {len(failed)} documents of {self.name!r}: {first}"
                )
        self._call("refresh", self.client.indices.refresh, index=self.name)
        return len(meta)

    def rebuild(self, meta: pd.DataFrame, vectors: Vectors) -> None:
        self._call("delete", self.client.indices.delete, index=self.name, ignore_unavailable=True)
        self._ensured = False
        self.ensure()
        self.add(meta, vectors)

    def save(self) -> None:
        """Elasticsearch persists on its own; here for the VectorIndex protocol."""

    def search(
        self,
        query: Vectors,
        k: int,
        where: SearchFilter | None = None,
        text: str | None = None,
    ) -> list[Hit]:
        """kNN over the vectors, filtered inside the kNN search; with ``text``, BM25 on the
        output text is added to the score (Elasticsearch's hybrid scoring)."""
        self.ensure()
        vector = np.asarray(query, dtype=np.float32).reshape(-1)
        if vector.shape[0] != self.dim:
            raise DimensionMismatch(f"the query is {vector.shape[0]}-d, the index {self.dim}-d")
        filters = filter_clauses(where)
        knn: dict[str, Any] = {
            "field": "vector",
            "query_vector": [float(x) for x in vector],
            "k": k,
            "num_candidates": max(100, 10 * k),
        }
        if filters:
            knn["filter"] = {"bool": {"filter": filters}}
        body: dict[str, Any] = {"knn": knn, "size": k, "source": ["key"]}
        if text:
            body["query"] = {"bool": {"should": [{"match": {"text": text}}], "filter": filters}}
        result = self._call("search", self.client.search, index=self.name, **body)
        return [Hit(str(h["_source"]["key"]), float(h["_score"])) for h in result["hits"]["hits"]]


def connect(url: str, api_key: str | None, username: str | None, password: str | None) -> Any:
    """The official client; credentials come from settings and are never logged or stored."""
    from elasticsearch import Elasticsearch

    auth: dict[str, Any] = {}
    if api_key:
        auth["api_key"] = api_key
    elif username and password:
        auth["basic_auth"] = (username, password)
    return Elasticsearch(url, request_timeout=30, **auth)
