"""Embedding the record: find what lacks a vector, embed it once, keep the index in step.

The same text is never embedded twice for a model: vectors are cached by (content hash,
embedding model) in the ``embeddings`` table, which is the system of record for vectors; the
FAISS index is rebuilt from it whenever it is missing, unreadable or of the wrong dimension.
An image embedder embeds image outputs instead, cached by their blob key (itself a content
hash), into its own index; text queries search it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from sandloop.config import Settings
from sandloop.embedding.embedders import (
    Embedder,
    ImageEmbedder,
    Vectors,
    embedder_from,
    image_embedder_from,
)
from sandloop.hashing import hash_bytes, hash_value
from sandloop.locks import FileLock
from sandloop.storage import es_index
from sandloop.storage.faiss_index import (
    DimensionMismatch,
    EmptyIndex,
    FaissIndex,
    IndexCorrupt,
    SearchFilter,
    VectorIndexError,
    folder_for,
)
from sandloop.storage.store import AkashicStore, DamagedStore, sql_str
from sandloop.storage.vector_index import VectorIndex

_IN_CHUNK = 500  # keys per SQL IN list


@dataclass
class EmbedReport:
    embedded: int = 0  # texts sent to the model
    reused: int = 0  # rows whose text was already embedded (cache hits)
    indexed: int = 0


def content_hash(text: str) -> str:
    return hash_bytes(text.encode("utf-8"))


def embedding_id(embedding_model: str, key: str) -> str:
    return hash_value({"embedding_model": embedding_model, "key": key})


def _where(embedding_model: str | None = None, **prefixes: str | None) -> str:
    clauses = [f"{col} LIKE {sql_str(val + '%')}" for col, val in prefixes.items() if val]
    if embedding_model is not None:
        clauses.append(f"embedding_model = {sql_str(embedding_model)}")
    return " AND ".join(clauses)


def missing_rows(
    store: AkashicStore,
    embedding_model: str,
    realm: str | None = None,
    thread: str | None = None,
    output_type: str = "text",
) -> pd.DataFrame:
    """Successful outputs of ``output_type`` that have no vector yet for ``embedding_model``."""
    kind = f"output_type = {sql_str(output_type)}"
    where = " AND ".join(filter(None, ["status = 'ok'", kind, _where(realm=realm, thread=thread)]))
    rows = store.invocations(where)
    if rows.empty:
        return rows
    done = store.select("embeddings", _where(embedding_model, realm=realm, thread=thread), ["key"])
    return rows[~rows["key"].isin(set(done["key"]))].reset_index(drop=True)


def _cached_vectors(
    store: AkashicStore, embedding_model: str, hashes: list[str]
) -> dict[str, list[float]]:
    found: dict[str, list[float]] = {}
    for start in range(0, len(hashes), _IN_CHUNK):
        chunk = ", ".join(sql_str(h) for h in hashes[start : start + _IN_CHUNK])
        frame = store.select(
            "embeddings",
            f"{_where(embedding_model)} AND content_hash IN ({chunk})",
            ["content_hash", "vector"],
        )
        found.update(zip(frame["content_hash"], frame["vector"], strict=True))
    return found


def embed_rows(
    store: AkashicStore,
    embedder: Embedder,
    rows: pd.DataFrame,
    *,
    batch_size: int = 256,
    on_batch: Callable[[int], None] = lambda _n: None,
) -> tuple[EmbedReport, pd.DataFrame, Vectors]:
    """Embed invocation rows (outputs of the embedder's type) and record their vectors; returns
    what was written."""
    report = EmbedReport()
    metas: list[pd.DataFrame] = []
    vectors: list[Vectors] = []
    for start in range(0, len(rows), batch_size):
        batch = rows.iloc[start : start + batch_size]
        outputs = batch["output"].astype(str).tolist()
        # an image output is its blob's key, which already names its content
        images = embedder.output_type == "image"
        hashes = outputs if images else [content_hash(t) for t in outputs]
        cached = _cached_vectors(store, embedder.name, sorted(set(hashes)))
        todo = list(dict.fromkeys(h for h in hashes if h not in cached))
        if todo:
            fresh = _embed_new(store, embedder, todo, dict(zip(hashes, outputs, strict=True)))
            cached.update(zip(todo, fresh.tolist(), strict=True))
        report.embedded += len(todo)
        report.reused += len(hashes) - len(todo)
        matrix = np.asarray([cached[h] for h in hashes], dtype=np.float32)
        now = datetime.now(UTC)
        store.upsert(
            "embeddings",
            [
                {
                    "id": embedding_id(embedder.name, str(row.key)),
                    "key": row.key,
                    "embedding_model": embedder.name,
                    "dim": embedder.dim,
                    "vector": matrix[i].tolist(),
                    "content_hash": hashes[i],
                    "realm": row.realm,
                    "thread": row.thread,
                    "model": row.model,
                    "step": int(row.step),
                    "created_at": now,
                }
                for i, row in enumerate(batch.itertuples(index=False))
            ],
        )
        metas.append(batch[["key", "realm", "thread", "model", "step", "output"]])
        vectors.append(matrix)
        on_batch(len(batch))
    meta = pd.concat(metas, ignore_index=True) if metas else rows.iloc[0:0]
    stacked = np.vstack(vectors) if vectors else np.zeros((0, embedder.dim), dtype=np.float32)
    return report, meta, stacked


def _embed_new(
    store: AkashicStore, embedder: Embedder, hashes: list[str], output_of: dict[str, str]
) -> Vectors:
    if embedder.output_type != "image":
        return embedder.embed([output_of[h] for h in hashes])
    images = store.blobs.get_many(hashes)
    lost = [h for h, data in zip(hashes, images, strict=True) if data is None]
    if lost:
        raise DamagedStore(
            f"{len(lost)} image blob(s) are missing, e.g. {lost[0][:12]}; see `sandloop doctor`"
        )
    return cast(ImageEmbedder, embedder).embed_images([d for d in images if d is not None])


def image_vectors(store: AkashicStore, embedder: ImageEmbedder) -> Callable[[list[str]], Vectors]:
    """Blob keys to vectors, for the convergence stop on image steps (which knows only keys)."""
    return lambda keys: _embed_new(store, embedder, keys, {})


def convergence_embedders(
    store: AkashicStore, settings: Settings, converge_above: float | None, draws_images: bool
) -> tuple[Callable[[list[str]], Vectors] | None, Callable[[list[str]], Vectors] | None]:
    """The convergence stop's (texts, images) embedders: none while the stop is off, and images
    only when an image embedding model is set and the network makes images."""
    if converge_above is None:
        return None, None
    images = None
    if draws_images and settings.image_embed_model:
        images = image_vectors(store, image_embedder_from(settings))
    return embedder_from(settings).embed, images


def stored_vectors(
    store: AkashicStore, embedding_model: str, output_type: str = "text"
) -> tuple[pd.DataFrame, Vectors]:
    """All vectors of a model with their address columns and output (text, for BM25)."""
    frame = store.select("embeddings", _where(embedding_model))
    if frame.empty:
        return frame, np.zeros((0, 0), dtype=np.float32)
    kind = f"output_type = {sql_str(output_type)}"
    texts = store.select("invocations", kind, ["key", "output"])
    frame = frame.merge(texts, on="key", how="left")
    return frame, np.asarray(frame["vector"].tolist(), dtype=np.float32)


def index_root(home: Path) -> Path:
    return home / "indexes" / "faiss"


def _index(
    store: AkashicStore, embedder: Embedder, settings: Settings, *, load: bool
) -> VectorIndex:
    """The configured backend's index for this model: FAISS loaded from disk when ``load``
    (raising IndexCorrupt or DimensionMismatch), else empty; Elasticsearch is always live."""
    if settings.index_backend == "elasticsearch":
        if not settings.es_url:
            raise VectorIndexError(
                "the Elasticsearch backend needs a URL: set SANDLOOP_ES_URL (and "
                "SANDLOOP_ES_API_KEY or SANDLOOP_ES_USERNAME/SANDLOOP_ES_PASSWORD)"
            )
        client = es_index.connect(
            settings.es_url,
            settings.es_api_key.get_secret_value() if settings.es_api_key else None,
            settings.es_username,
            settings.es_password.get_secret_value() if settings.es_password else None,
        )
        name = es_index.index_name(settings.es_index_prefix, embedder.name)
        return es_index.ElasticsearchIndex(client, name, embedder.name, embedder.dim)
    folder = folder_for(index_root(store.cache), embedder.name)
    make = FaissIndex.load if load else FaissIndex
    return make(folder, embedder.name, embedder.dim, ivf_threshold=settings.ivf_threshold)


def open_index(
    store: AkashicStore,
    embedder: Embedder,
    settings: Settings | None = None,
    announce: Callable[[str], None] = lambda _m: None,
) -> VectorIndex:
    """The model's index, rebuilt from the store if unreadable or of another dimension, and
    caught up with vectors other processes recorded since it was last written."""
    settings = settings or Settings.for_home(store.home)
    try:
        index = _index(store, embedder, settings, load=True)
        known = store.count("embeddings", _where(embedder.name))
        behind = len(index) < known
    except (IndexCorrupt, DimensionMismatch) as exc:
        announce(f"{exc}; rebuilding it from the store")
        return rebuild_index(store, embedder, settings)
    if behind:
        meta, vectors = stored_vectors(store, embedder.name, embedder.output_type)
        if index.add(meta, vectors):
            _save_cache(index)
    return index


def _save_cache(index: VectorIndex) -> None:
    """The index is a cache of the store: on a read-only disk a search works from memory."""
    with contextlib.suppress(OSError):
        index.save()


def rebuild_index(
    store: AkashicStore, embedder: Embedder, settings: Settings | None = None
) -> VectorIndex:
    settings = settings or Settings.for_home(store.home)
    index = _index(store, embedder, settings, load=False)
    meta, vectors = stored_vectors(store, embedder.name, embedder.output_type)
    index.rebuild(meta, vectors if len(meta) else np.zeros((0, embedder.dim), np.float32))
    _save_cache(index)
    return index


@contextlib.contextmanager
def _one_writer(store: AkashicStore, embedder: Embedder) -> Iterator[None]:
    """One writer per embedding model at a time (a file lock, across threads and processes), so
    concurrent back-fills never embed the same rows twice or lose each other's index updates."""
    root = index_root(store.cache)
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(folder_for(root, embedder.name).with_suffix(".lock")):
        yield


def embed_and_index(
    store: AkashicStore,
    embedder: Embedder,
    *,
    realm: str | None = None,
    thread: str | None = None,
    batch_size: int = 256,
    settings: Settings | None = None,
    on_total: Callable[[int], None] = lambda _n: None,
    on_batch: Callable[[int], None] = lambda _n: None,
    announce: Callable[[str], None] = lambda _m: None,
    limit: int | None = None,
) -> EmbedReport:
    """Back-fill: embed every output of the embedder's type lacking a vector for this model
    (the first ``limit`` of them, in record order, when given), and index it."""
    with _one_writer(store, embedder):
        todo = missing_rows(store, embedder.name, realm, thread, embedder.output_type)
        if limit is not None:
            todo = todo.head(limit)
        on_total(len(todo))
        return _embed_and_add(store, embedder, todo, batch_size, settings, on_batch, announce)


def embed_missing(
    store: AkashicStore,
    embedder: Embedder,
    rows: pd.DataFrame,
    *,
    settings: Settings | None = None,
    announce: Callable[[str], None] = lambda _m: None,
) -> EmbedReport:
    """Embed and index those of ``rows`` (invocation rows) that are successful outputs of the
    embedder's type without a vector yet: for readers that hold the steps already and need
    their vectors."""
    with _one_writer(store, embedder):
        texts = rows[(rows["status"] == "ok") & (rows["output_type"] == embedder.output_type)]
        done = _embedded_keys(store, embedder.name, texts["key"].tolist())
        todo = texts[~texts["key"].isin(done)].reset_index(drop=True)
        if todo.empty:
            return EmbedReport()
        # large batches: one upsert per few thousand rows (the embedder batches its own calls)
        return _embed_and_add(store, embedder, todo, 4096, settings, lambda _n: None, announce)


def pending(
    store: AkashicStore,
    embedding_model: str,
    thread: str | None = None,
    output_type: str = "text",
) -> int:
    """How many successful outputs of ``output_type`` (of ``thread``) have no vector for
    ``embedding_model`` yet: counted, not read, so a listing or a search says it cheaply."""
    kind = f"status = 'ok' AND output_type = {sql_str(output_type)}"
    outputs = " AND ".join(filter(None, [kind, _where(thread=thread)]))
    vectors = _where(embedding_model, thread=thread)  # a model embeds one type alone
    return max(0, store.count("invocations", outputs) - store.count("embeddings", vectors))


def catch_up(
    store: AkashicStore,
    embedder: Embedder,
    *,
    limit: int | None = None,
    settings: Settings | None = None,
    announce: Callable[[str], None] = lambda _m: None,
) -> EmbedReport:
    """Before a search: embed what was recorded since the last embedding (the first
    ``limit`` outputs of it, when given), since runs do not wait for their embeddings. A count
    says whether there is any, so a search with nothing new takes no lock and reads no rows."""
    if not pending(store, embedder.name, output_type=embedder.output_type):
        return EmbedReport()

    def said(todo: int) -> None:
        if todo:
            announce(f"embedding {todo} outputs recorded since the last search or embed")

    writable = (
        store
        if not store.readonly
        else AkashicStore.for_settings(settings or Settings.for_home(store.home))
    )
    return embed_and_index(
        writable, embedder, settings=settings, on_total=said, announce=announce, limit=limit
    )


def _embedded_keys(store: AkashicStore, embedding_model: str, keys: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(keys), _IN_CHUNK):
        chunk = ", ".join(sql_str(k) for k in keys[start : start + _IN_CHUNK])
        where = f"{_where(embedding_model)} AND key IN ({chunk})"
        found.update(store.select("embeddings", where, ["key"])["key"])
    return found


def _embed_and_add(
    store: AkashicStore,
    embedder: Embedder,
    todo: pd.DataFrame,
    batch_size: int,
    settings: Settings | None,
    on_batch: Callable[[int], None],
    announce: Callable[[str], None],
) -> EmbedReport:
    index = open_index(store, embedder, settings, announce)
    if todo.empty:
        return EmbedReport()
    report, meta, vectors = embed_rows(
        store, embedder, todo, batch_size=batch_size, on_batch=on_batch
    )
    report.indexed = index.add(meta, vectors)
    index.save()
    return report


def search(
    store: AkashicStore,
    embedder: Embedder,
    query: str,
    k: int = 10,
    where: SearchFilter | None = None,
    announce: Callable[[str], None] = lambda _m: None,
    settings: Settings | None = None,
) -> pd.DataFrame:
    """Nearest recorded outputs to ``query``: score, key, thread, step, model, output.

    With Elasticsearch the query text also scores by BM25 (hybrid); FAISS ranks by cosine."""
    index = open_index(store, embedder, settings, announce)
    if len(index) == 0:
        images = " --images" if embedder.output_type == "image" else ""
        raise EmptyIndex(
            f"nothing is embedded with {embedder.name!r} yet; run "
            f"`sandloop embed{images} --model {embedder.name}` first"
        )
    vector = embedder.embed([query])[0]
    if isinstance(index, es_index.ElasticsearchIndex):
        hits = index.search(vector, k, where, text=query)
    else:
        hits = index.search(vector, k, where)
    columns = ["score", "key", "thread", "step", "model", "output_type", "output"]
    if not hits:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    keys = ", ".join(sql_str(h.key) for h in hits)
    found = store.invocations(f"key IN ({keys})").set_index("key")
    scores: dict[str, Any] = {h.key: h.score for h in hits}
    result = found.loc[[h.key for h in hits if h.key in found.index]].reset_index()
    result["score"] = result["key"].map(scores)
    return result[columns]
