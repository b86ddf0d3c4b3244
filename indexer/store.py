"""Vector stores: vectors addressed by integer ids, persisted with their metadata."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import faiss
import numpy as np

from indexer import persist
from indexer.persist import CorruptIndex

log = logging.getLogger(__name__)

VECTORS_FILE = "vectors.faiss"
META_FILE = "meta.json"


class VectorStore(Protocol):
    """Inner-product search over unit vectors, each with a caller-chosen int64 id."""

    @property
    def dim(self) -> int:
        """Vector dimension."""
        ...

    def __len__(self) -> int:
        """Number of stored vectors."""
        ...

    def add(self, ids: Sequence[int], vectors: np.ndarray) -> None:
        """Store vectors (one row per id); ids must be new."""
        ...

    def remove(self, ids: Sequence[int]) -> None:
        """Forget the vectors with these ids (unknown ids are ignored)."""
        ...

    def clear(self) -> None:
        """Remove every vector."""
        ...

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """The `k` best (id, inner product) pairs for one query vector, best first."""
        ...

    def save(self, folder: Path, meta: Mapping[str, Any]) -> None:
        """Atomically persist the vectors and `meta` (JSON-able) into `folder`."""
        ...

    def load(self, folder: Path) -> dict[str, Any]:
        """Replace the contents with what `save` wrote; returns `meta`. Raises `CorruptIndex`."""
        ...


class FaissStore:
    """Exact search with `faiss.IndexIDMap2(IndexFlatIP(dim))`, saved via `indexer.persist`."""

    def __init__(self, dim: int) -> None:
        """An empty store for vectors of dimension `dim`."""
        self._dim = dim
        self._index = self._empty()

    def _empty(self) -> Any:
        """A fresh id-mapped flat inner-product index."""
        return faiss.IndexIDMap2(faiss.IndexFlatIP(self._dim))

    @property
    def dim(self) -> int:
        """Vector dimension."""
        return self._dim

    def __len__(self) -> int:
        """Number of stored vectors."""
        return int(self._index.ntotal)

    def add(self, ids: Sequence[int], vectors: np.ndarray) -> None:
        """Store vectors under the given ids."""
        if len(ids) == 0:
            return
        matrix = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(ids), self._dim)
        self._index.add_with_ids(matrix, np.asarray(ids, dtype=np.int64))

    def remove(self, ids: Sequence[int]) -> None:
        """Remove vectors by id."""
        if len(ids) == 0:
            return
        self._index.remove_ids(np.asarray(ids, dtype=np.int64))

    def clear(self) -> None:
        """Remove every vector."""
        self._index = self._empty()

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """Best `k` (id, score) pairs for one query vector."""
        k = min(k, len(self))
        if k <= 0:
            return []
        vector = np.ascontiguousarray(query, dtype=np.float32).reshape(1, self._dim)
        scores, ids = self._index.search(vector, k)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]

    def save(self, folder: Path, meta: Mapping[str, Any]) -> None:
        """Write vectors and metadata as a new generation, then switch to it."""
        index = self._index

        def vectors(path: Path) -> None:
            # Streamed to the file. `serialize_index` held the vectors twice more in memory
            # (its growing buffer, then the array it returns) at every save of a build;
            # `python -m slm_lsp.bench.indexmem` measures what a save costs now. Python
            # writes the blocks, so a full disk is an OSError with its errno (FAISS's own
            # file writer reports it as a RuntimeError).
            with open(path, "wb") as handle:
                writer = faiss.PyCallbackIOWriter(handle.write)  # type: ignore[attr-defined]
                faiss.write_index(index, writer)
                del writer

        persist.write_generation(folder, {VECTORS_FILE: vectors, META_FILE: persist.json_writer(meta)},
                                 {"dim": self._dim, "vectors": len(self)})

    def load(self, folder: Path) -> dict[str, Any]:
        """Read the current generation, checking checksums, dimension and counts."""
        info, files = persist.read_generation(folder)
        if info.get("dim") != self._dim:
            raise CorruptIndex(f"stored vectors have dimension {info.get('dim')}, "
                               f"expected {self._dim}")
        try:
            index = faiss.deserialize_index(np.frombuffer(files[VECTORS_FILE], dtype=np.uint8))
            meta = json.loads(files[META_FILE])
        except (KeyError, ValueError, RuntimeError) as exc:
            raise CorruptIndex(f"unreadable index files: {exc}") from exc
        if index.d != self._dim or index.ntotal != info.get("vectors"):
            raise CorruptIndex("stored vectors do not match the manifest")
        if not isinstance(meta, dict):
            raise CorruptIndex("index metadata is not an object")
        self._index = index
        return meta
