"""What the index reports: build progress, index statistics, search results; and the
content hash and embedded text of a chunk, which decide what is re-embedded.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from indexer.chunker import Chunk


@dataclass(frozen=True)
class IndexProgress:
    """Where a build is: `phase` is loading (the embedding model; reported by the server),
    scanning, indexing, embedding (a batch), saving or done."""

    phase: str
    files_done: int
    files_total: int
    chunks: int
    elapsed: float
    path: str | None = None


@dataclass(frozen=True)
class IndexStats:
    """Size of the index; after `build` also its duration and how much was reused."""

    files: int
    chunks: int
    languages: dict[str, int]
    seconds: float = 0.0
    reused: int = 0
    embedded: int = 0
    cancelled: bool = False


@dataclass(frozen=True)
class SearchResult:
    """A retrieved chunk, its fused score and the raw dense/lexical scores (None if unused)."""

    chunk: Chunk
    score: float
    dense: float | None = None
    lexical: float | None = None


def content_hash(text: str) -> str:
    """SHA-256 of a file's text."""
    return hashlib.sha256(text.encode("utf-8", errors="surrogatepass")).hexdigest()


def embedding_text(chunk: Chunk) -> str:
    """What is embedded for a chunk: its path and symbol, then its text."""
    head = f"{chunk.path} {chunk.symbol}" if chunk.symbol else chunk.path
    return f"{head}\n{chunk.text}"
