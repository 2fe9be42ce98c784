"""The embedded vector index: FAISS on local disk, one index per embedding model.

Exact search (``IndexFlatIP`` on normalised vectors: cosine) up to ``ivf_threshold`` vectors,
where a single query still runs at ~100/s on 2 cores; beyond it, ``IndexIVFFlat`` with nprobe 16
(~1,000 q/s at recall ~0.99, see NOTES). Filters (realm, thread, source model) become a FAISS
ID selector, so the search ranks only the allowed vectors: no over-fetching and hoping.

The index is never the only copy: vectors live in the ``embeddings`` table and the index is
rebuilt from it when missing, corrupt, or of another dimension.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sandloop.embedding.embedders import Vectors
from sandloop.errors import SandloopError

META_COLUMNS = ("key", "realm", "thread", "model", "step")
INDEX_FILE, META_FILE, MANIFEST_FILE = "index.faiss", "meta.parquet", "manifest.json"


class VectorIndexError(SandloopError, RuntimeError):
    """The index cannot serve this request; the message says how to fix it."""


class IndexCorrupt(VectorIndexError):
    pass


class DimensionMismatch(VectorIndexError):
    pass


class EmptyIndex(VectorIndexError):
    pass


@dataclass(frozen=True)
class SearchFilter:
    realm: str | None = None  # prefixes
    thread: str | None = None
    model: str | None = None  # the model that produced the output, exact

    @property
    def is_empty(self) -> bool:
        return self.realm is None and self.thread is None and self.model is None

    def mask(self, meta: pd.DataFrame) -> np.ndarray[Any, np.dtype[np.bool_]] | None:
        """The rows this filter allows (a plain, uncached evaluation)."""
        if self.is_empty:
            return None
        return _ColumnCodes.build(meta).allowed(self)


@dataclass
class _ColumnCodes:
    """Metadata columns as sorted categories plus per-row codes.

    A prefix selects a contiguous run of sorted categories (two binary searches), and the rows
    follow from comparing small integer codes: about a millisecond for 100k rows, where a
    string comparison per row per query cost ~20 ms.
    """

    categories: dict[str, np.ndarray[Any, Any]]
    codes: dict[str, np.ndarray[Any, Any]]

    @classmethod
    def build(cls, meta: pd.DataFrame) -> _ColumnCodes:
        categories, codes = {}, {}
        for column in ("realm", "thread", "model"):
            as_category = pd.Categorical(meta[column].astype(str))
            categories[column] = np.asarray(as_category.categories, dtype=object)
            codes[column] = np.asarray(as_category.codes)
        return cls(categories, codes)

    def _prefix(self, column: str, prefix: str) -> np.ndarray[Any, np.dtype[np.bool_]]:
        sorted_values = self.categories[column]
        low = int(np.searchsorted(sorted_values, prefix, side="left"))
        high = int(np.searchsorted(sorted_values, prefix + "\U0010ffff", side="left"))
        code = self.codes[column]
        result: np.ndarray[Any, np.dtype[np.bool_]] = (code >= low) & (code < high)
        return result

    def _exact(self, column: str, value: str) -> np.ndarray[Any, np.dtype[np.bool_]]:
        sorted_values = self.categories[column]
        at = int(np.searchsorted(sorted_values, value))
        found = at < len(sorted_values) and sorted_values[at] == value
        code = self.codes[column]
        result: np.ndarray[Any, np.dtype[np.bool_]] = (
            code == at if found else np.zeros(len(code), dtype=bool)
        )
        return result

    def allowed(self, where: SearchFilter) -> np.ndarray[Any, np.dtype[np.bool_]]:
        keep = np.ones(len(self.codes["thread"]), dtype=bool)
        if where.realm:
            keep &= self._prefix("realm", where.realm)
        if where.thread:
            keep &= self._prefix("thread", where.thread)
        if where.model:
            keep &= self._exact("model", where.model)
        return keep


@dataclass(frozen=True)
class Hit:
    key: str
    score: float


def folder_for(root: Path, embedding_model: str) -> Path:
    return root / re.sub(r"[^\w.\-]+", "_", embedding_model)


class FaissIndex:
    def __init__(
        self, folder: Path, embedding_model: str, dim: int, *, ivf_threshold: int = 200_000
    ) -> None:
        import faiss

        self.folder = folder
        self.embedding_model = embedding_model
        self.dim = dim
        self.ivf_threshold = ivf_threshold
        self._faiss = faiss
        self._index: Any = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self._meta = pd.DataFrame({c: pd.Series(dtype=object) for c in META_COLUMNS})
        self._ids: dict[str, int] = {}
        self._codes: _ColumnCodes | None = None  # built on the first filtered search
        self._keys: np.ndarray[Any, Any] | None = None  # row number -> key, built on demand
        self._kind = "flat"

    # -- persistence ------------------------------------------------------------------------

    @classmethod
    def load(
        cls, folder: Path, embedding_model: str, dim: int, *, ivf_threshold: int = 200_000
    ) -> FaissIndex:
        """Open the persisted index; an absent one is empty. Raises IndexCorrupt or
        DimensionMismatch so the caller can rebuild from the store."""
        index = cls(folder, embedding_model, dim, ivf_threshold=ivf_threshold)
        if not (folder / MANIFEST_FILE).exists():
            return index
        try:
            manifest = json.loads((folder / MANIFEST_FILE).read_text())
            loaded = index._faiss.read_index(str(folder / INDEX_FILE))
            meta = pd.read_parquet(folder / META_FILE)
        except Exception as exc:  # faiss raises RuntimeError, parquet ArrowInvalid, json ...
            raise IndexCorrupt(f"the FAISS index in {folder} cannot be read ({exc})") from None
        if manifest.get("dim") != dim or loaded.d != dim:
            raise DimensionMismatch(
                f"the FAISS index in {folder} holds {loaded.d}-d vectors, but "
                f"{embedding_model!r} makes {dim}-d ones"
            )
        if loaded.ntotal != len(meta):
            raise IndexCorrupt(
                f"the FAISS index in {folder} has {loaded.ntotal} vectors but {len(meta)} keys"
            )
        index._index, index._meta = loaded, meta
        index._ids = {key: i for i, key in enumerate(meta["key"])}
        index._kind = index._detect_kind()
        return index

    def save(self) -> None:
        """Write beside the old files and swap the folder in, so a crash leaves one or the other."""
        self.folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=self.folder.parent, prefix=".faiss-"))
        # Serialised in memory and written by Python: FAISS's own file writer prints its I/O
        # errors (a full disk) to the console from C++, beside the command's one error line.
        (staging / INDEX_FILE).write_bytes(self._faiss.serialize_index(self._index).tobytes())
        self._meta.to_parquet(staging / META_FILE, index=False)
        manifest = {
            "embedding_model": self.embedding_model,
            "dim": self.dim,
            "count": len(self),
            "kind": self.kind,
        }
        (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2))
        if self.folder.exists():
            retired = self.folder.with_name(f".{self.folder.name}.old-{os.getpid()}")
            self.folder.rename(retired)
            staging.rename(self.folder)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            staging.rename(self.folder)

    # -- content ----------------------------------------------------------------------------

    def __len__(self) -> int:
        return int(self._index.ntotal)

    @property
    def kind(self) -> str:
        """'flat' (exact) or 'ivf'; decided when the index is built or loaded, not per query."""
        return self._kind

    def _detect_kind(self) -> str:
        inner = self._index
        if isinstance(inner, self._faiss.IndexIDMap2 | self._faiss.IndexIDMap):
            inner = self._faiss.downcast_index(inner.index)
        return "ivf" if isinstance(inner, self._faiss.IndexIVF) else "flat"

    def add(self, meta: pd.DataFrame, vectors: Vectors) -> int:
        """Add vectors whose keys are new; returns how many were added."""
        if vectors.shape[1:] != (self.dim,):
            raise DimensionMismatch(f"vectors are {vectors.shape[1:]}, the index takes {self.dim}")
        fresh = ~meta["key"].isin(self._ids.keys()).to_numpy(dtype=bool)
        fresh &= ~meta["key"].duplicated(keep="first").to_numpy(dtype=bool)
        if not fresh.any():
            return 0
        new_meta = meta.loc[fresh, list(META_COLUMNS)].reset_index(drop=True)
        start = len(self._meta)
        ids = np.arange(start, start + len(new_meta), dtype=np.int64)
        self._index.add_with_ids(np.ascontiguousarray(vectors[fresh], dtype=np.float32), ids)
        self._meta = pd.concat([self._meta, new_meta], ignore_index=True)
        self._codes, self._keys = None, None
        self._ids.update({key: int(i) for key, i in zip(new_meta["key"], ids, strict=True)})
        return len(new_meta)

    def rebuild(self, meta: pd.DataFrame, vectors: Vectors) -> None:
        """Start over from the store's vectors: flat below the threshold, IVF above it."""
        faiss = self._faiss
        n = len(meta)
        if n >= self.ivf_threshold:
            nlist = max(16, int(4 * math.sqrt(n)))
            quantizer = faiss.IndexFlatIP(self.dim)
            ivf = faiss.IndexIVFFlat(quantizer, self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
            ivf.train(np.ascontiguousarray(vectors, dtype=np.float32))
            ivf.nprobe = 16
            self._index = faiss.IndexIDMap2(ivf)
            self._kind = "ivf"
        else:
            self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
            self._kind = "flat"
        self._meta = pd.DataFrame({c: pd.Series(dtype=object) for c in META_COLUMNS})
        self._ids = {}
        self._codes = None
        self.add(meta, vectors)

    def search(self, query: Vectors, k: int, where: SearchFilter | None = None) -> list[Hit]:
        if len(self) == 0:
            return []
        faiss = self._faiss
        params: Any = None
        if where is not None and not where.is_empty:
            if self._codes is None:
                self._codes = _ColumnCodes.build(self._meta)
            mask = self._codes.allowed(where)
            if not mask.any():
                return []
            # A bitmap costs N/8 bytes whatever the selectivity; ids are row numbers.
            bitmap = np.packbits(mask, bitorder="little")
            selector = faiss.IDSelectorBitmap(len(mask), faiss.swig_ptr(bitmap))
            if self._kind == "ivf":
                params = faiss.SearchParametersIVF(sel=selector, nprobe=16)
            else:
                params = faiss.SearchParameters(sel=selector)
        vector = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
        if vector.shape[1] != self.dim:
            raise DimensionMismatch(f"the query is {vector.shape[1]}-d, the index {self.dim}-d")
        scores, ids = self._index.search(vector, min(k, len(self)), params=params)
        if self._keys is None:
            self._keys = self._meta["key"].to_numpy()
        keys = self._keys
        return [
            Hit(str(keys[i]), float(s)) for s, i in zip(scores[0], ids[0], strict=True) if i >= 0
        ]
