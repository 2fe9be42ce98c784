"""What every vector index offers (FAISS embedded, Elasticsearch scale-out)."""

from __future__ import annotations

from typing import Protocol

import pandas as pd

from sandloop.embedding.embedders import Vectors
from sandloop.storage.faiss_index import Hit, SearchFilter


class VectorIndex(Protocol):
    @property
    def kind(self) -> str: ...

    def __len__(self) -> int: ...

    def add(self, meta: pd.DataFrame, vectors: Vectors) -> int:
        """Add vectors keyed by ``meta['key']``; known keys are not duplicated."""
        ...

    def rebuild(self, meta: pd.DataFrame, vectors: Vectors) -> None: ...

    def save(self) -> None: ...

    def search(self, query: Vectors, k: int, where: SearchFilter | None = None) -> list[Hit]: ...
