"""Back-fill, cache, index upkeep and search against a real store and real FAISS."""

from __future__ import annotations

from pathlib import Path

import pytest

from _common import invocation_rows
from sandloop.embedding import service
from sandloop.embedding.embedders import get_embedder
from sandloop.storage.faiss_index import EmptyIndex, SearchFilter, folder_for
from sandloop.storage.store import AkashicStore

TEXTS = ["a red balloon over the sea", "quarterly tax law reform", "a lighthouse in the fog"]


@pytest.fixture
def store(home: Path) -> AkashicStore:
    store = AkashicStore.open(home)
    rows = invocation_rows(30)
    for i, row in enumerate(rows):
        row["output"] = f"{TEXTS[i % 3]} {i % 2}"  # 6 distinct texts in 30 rows
        row["thread"] = ("a" if i < 15 else "b") * 32
    rows[5]["output_type"], rows[5]["output"] = "image", "0" * 32  # images are not embedded
    rows[6]["status"], rows[6]["output"] = "failed", None
    store.upsert("invocations", rows)
    return store


def test_backfill_embeds_each_text_once_and_is_idempotent(store: AkashicStore) -> None:
    embedder = get_embedder("hashing")
    report = service.embed_and_index(store, embedder, batch_size=7)
    assert report.embedded == 6 and report.reused == 28 - 6 and report.indexed == 28
    assert len(store.select("embeddings")) == 28
    again = service.embed_and_index(store, embedder)
    assert (again.embedded, again.reused, again.indexed) == (0, 0, 0)
    assert len(store.select("embeddings")) == 28


def test_backfill_by_thread_prefix(store: AkashicStore) -> None:
    report = service.embed_and_index(store, get_embedder("hashing"), thread="bbbb")
    assert report.indexed == 15
    assert set(store.select("embeddings")["thread"]) == {"b" * 32}


def test_search_returns_records_and_honours_filters(store: AkashicStore) -> None:
    embedder = get_embedder("all-MiniLM-L6-v2")
    service.embed_and_index(store, embedder)
    hits = service.search(store, embedder, "a beacon on a misty coast", k=4)
    assert len(hits) == 4 and hits["output"].str.startswith("a lighthouse").all()
    assert hits["score"].is_monotonic_decreasing
    only_b = service.search(store, embedder, "balloon", k=50, where=SearchFilter(thread="b"))
    assert len(only_b) == 15 and only_b["thread"].eq("b" * 32).all()


def test_searching_before_embedding_is_a_clear_error(store: AkashicStore) -> None:
    with pytest.raises(EmptyIndex, match="run `sandloop embed --model hashing-256` first"):
        service.search(store, get_embedder("hashing"), "anything")


def test_a_corrupt_index_is_rebuilt_from_the_store(store: AkashicStore) -> None:
    embedder = get_embedder("hashing")
    service.embed_and_index(store, embedder)
    folder = folder_for(service.index_root(store.home), embedder.name)
    (folder / "index.faiss").write_bytes(b"not an index")
    said: list[str] = []
    hits = service.search(store, embedder, TEXTS[1], k=3, announce=said.append)
    assert len(hits) == 3 and "rebuilding it from the store" in said[0]
    assert len(service.open_index(store, embedder)) == 28


def test_an_index_of_another_dimension_is_rebuilt(store: AkashicStore) -> None:
    service.embed_and_index(store, get_embedder("hashing-32"))
    folder = folder_for(service.index_root(store.home), "hashing-32")
    (folder / "manifest.json").write_text('{"dim": 64}')
    said: list[str] = []
    assert len(service.open_index(store, get_embedder("hashing-32"), announce=said.append)) == 28
    assert said and "rebuilding" in said[0]


def test_a_stale_index_catches_up_with_vectors_written_elsewhere(store: AkashicStore) -> None:
    embedder = get_embedder("hashing")
    service.embed_and_index(store, embedder, thread="aaaa")
    # another writer records vectors without touching this index (e.g. a crash before save)
    rows = service.missing_rows(store, embedder.name)
    service.embed_rows(store, embedder, rows)
    assert len(service.open_index(store, embedder)) == 28
