"""The repository index: incremental build, live updates and hybrid search.

Typical use (the server runs `build` in a worker thread)::

    index = RepoIndex(root, workspace_dir(root) / "index")
    index.load()                      # fast: reuse what an earlier run saved
    stats = index.build(progress=report, cancel=stop_event)
    hits = index.search("parse the config file", k=8, exclude_paths=[current], budget_ms=100)

Every public method is thread-safe. Embedding runs outside the main lock, so
searches stay answerable while a build or an update is embedding.

`RepoIndex` and one run of its build (`_Build`) share one lock and one table of
files and chunks, which is why they stay in one module (about 550 lines); the
records it returns are in `indexer.records`, chunk sizing in `indexer.pieces`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from indexer import persist
from indexer.chunker import (
    CHUNKER_VERSION,
    DEFAULT_LIMITS,
    Chunk,
    ChunkLimits,
    chunk_text,
    fallback_language,
)
from indexer.embedder import Embedder, EmbedderUnavailable, SentenceTransformerEmbedder
from indexer.languages import language_for_path
from indexer.lexical import LexicalIndex
from indexer.persist import CorruptIndex
from indexer.records import IndexProgress, IndexStats, SearchResult, content_hash, embedding_text
from indexer.secrets import redact
from indexer.store import FaissStore, VectorStore
from indexer.walker import IGNORE_FILES, Walker, decode_text

__all__ = ["IndexProgress", "IndexStats", "RepoIndex", "SearchResult"]

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
"""Version of the metadata layout; another version is rebuilt, never read."""
RRF_K = 60
"""Reciprocal rank fusion constant: score = sum of 1 / (RRF_K + rank)."""
EMBED_BATCH = 32
"""Chunks embedded (and applied to the index) together during a build."""
EMBED_STEP = 4
"""Chunks embedded between two calls of `RepoIndex.between_steps` (about 0.3 s on one
core): how long a completion can find the build competing for the CPU."""
SCAN_STEP = 64
"""Files listed between two calls of `RepoIndex.between_steps` while a build scans the
repository (Django's 4,270 take 0.8 s of CPU in all)."""
SAVE_EVERY_S = 60.0
"""During a long build, save progress at least this often."""


@dataclass
class _FileEntry:
    """What the index holds for one file."""

    digest: str
    language: str
    chunk_ids: list[int] = field(default_factory=list)


@dataclass
class _Pending:
    """A file chunked but not yet embedded, with the version it was read at."""

    rel: str
    digest: str
    language: str
    chunks: list[Chunk]
    version: int


def _overlap(a: Chunk, b: Chunk) -> bool:
    """True if two chunks share lines of the same file (e.g. neighbouring windows)."""
    return a.path == b.path and a.start_line <= b.end_line and b.start_line <= a.end_line


class RepoIndex:
    """Hybrid (FAISS dense + BM25 lexical) index of one repository, kept in `cache_dir`."""

    def __init__(self, root: str | os.PathLike[str], cache_dir: str | os.PathLike[str],
                 embedder: Embedder | None = None, store: VectorStore | None = None,
                 max_file_kb: int = 512, limits: ChunkLimits = DEFAULT_LIMITS) -> None:
        """An index of `root`; nothing is read until `load`, `build` or `search`."""
        self.root = Path(root).resolve()
        self.cache_dir = Path(cache_dir)
        self.embedder: Embedder = embedder or SentenceTransformerEmbedder()
        self.store: VectorStore = store or FaissStore(self.embedder.dim)
        self.walker = Walker(self.root, max_file_kb)
        self.limits = limits
        self._lock = threading.RLock()
        self._embed_lock = threading.Lock()
        self._build_lock = threading.Lock()
        self._files: dict[str, _FileEntry] = {}
        self._chunks: dict[int, Chunk] = {}
        self._versions: dict[str, int] = {}
        self._lexical = LexicalIndex()
        self._next_id = 1
        self._loaded = False
        self._dirty = False
        self._cost_ms = {"dense": 25.0, "lexical": 5.0}
        self.between_steps: Callable[[], None] | None = None
        """Called before each `EMBED_STEP` chunks a build or an update embeds, between the
        steps of the embedding model's load and every `SCAN_STEP` files a build lists (the
        server passes one that lowers the thread's priority and waits while the user is
        getting completions)."""

    # ----- persistence -------------------------------------------------------------------

    def load(self) -> bool:
        """Read the saved index; False (and a warning) if absent, corrupt or of another embedder."""
        with self._lock:
            self._loaded = True
            if not persist.exists(self.cache_dir):
                return False
            try:
                meta = self.store.load(self.cache_dir)
                self._restore(meta)
            except CorruptIndex as exc:
                log.warning("index in %s is unusable (%s); it will be rebuilt", self.cache_dir, exc)
                self._reset()
                self._dirty = True
                return False
            log.info("loaded index of %s: %d files, %d chunks", self.root, len(self._files),
                     len(self._chunks))
            return True

    def _ensure_loaded(self) -> None:
        """Load once, lazily."""
        if not self._loaded:
            self.load()

    def _reset(self) -> None:
        """Forget everything in memory (the store is emptied too)."""
        self._files.clear()
        self._chunks.clear()
        self._lexical = LexicalIndex()
        self._next_id = 1
        self.store.clear()

    def _restore(self, meta: dict[str, Any]) -> None:
        """Fill memory from saved metadata; raises `CorruptIndex` if it does not fit."""
        if meta.get("format") != FORMAT_VERSION:
            raise CorruptIndex(f"metadata format {meta.get('format')!r}, expected {FORMAT_VERSION}")
        if meta.get("chunking") != self._chunking():
            raise CorruptIndex("chunking rules changed since the index was built")
        if meta.get("embedder") != self.embedder.name or meta.get("dim") != self.embedder.dim:
            raise CorruptIndex(f"built with embedder {meta.get('embedder')!r}/{meta.get('dim')}, "
                               f"now {self.embedder.name!r}/{self.embedder.dim}")
        try:
            chunks = {int(row[0]): Chunk(str(row[1]), str(row[2]), int(row[3]), int(row[4]),
                                         str(row[7]), row[5], str(row[6]))
                      for row in meta["chunks"]}
            files = {rel: _FileEntry(str(e[0]), str(e[1]), [int(i) for i in e[2]])
                     for rel, e in meta["files"].items()}
            next_id = int(meta["next_id"])
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise CorruptIndex(f"malformed metadata: {exc}") from exc
        if len(chunks) != len(self.store) or any(i not in chunks for e in files.values()
                                                 for i in e.chunk_ids):
            raise CorruptIndex("metadata and stored vectors disagree")
        self._chunks, self._files, self._next_id = chunks, files, next_id
        self._lexical = LexicalIndex()
        for chunk_id, chunk in chunks.items():
            self._lexical.add(chunk_id, embedding_text(chunk))

    def _meta(self) -> dict[str, Any]:
        """Everything but the vectors, as JSON-able data (called under the lock)."""
        return {
            "format": FORMAT_VERSION,
            "embedder": self.embedder.name,
            "dim": self.embedder.dim,
            "chunking": self._chunking(),
            "root": str(self.root),
            "next_id": self._next_id,
            "files": {rel: [e.digest, e.language, e.chunk_ids] for rel, e in self._files.items()},
            "chunks": [[i, c.path, c.language, c.start_line, c.end_line, c.symbol, c.kind, c.text]
                       for i, c in self._chunks.items()],
        }

    def _chunking(self) -> str:
        """Identifies the chunking rules in force (version and limits)."""
        return f"{CHUNKER_VERSION}:{self.limits}"

    def save(self) -> bool:
        """Persist the index atomically if it changed since the last save; True if written."""
        with self._lock:
            if not self._dirty:
                return False
            self.store.save(self.cache_dir, self._meta())
            self._dirty = False
            return True

    @property
    def dirty(self) -> bool:
        """True when memory holds changes not yet saved."""
        return self._dirty

    # ----- building ----------------------------------------------------------------------

    def build(self, progress: Callable[[IndexProgress], None] | None = None,
              cancel: threading.Event | None = None) -> IndexStats:
        """Bring the index up to date with the files on disk, re-embedding only changed files."""
        with self._build_lock:
            return _Build(self, progress, cancel).run()

    def _read_version(self, rel: str) -> tuple[_FileEntry | None, int]:
        """A file's current entry and version counter."""
        with self._lock:
            return self._files.get(rel), self._versions.get(rel, 0)

    def _embed(self, texts: list[str]) -> np.ndarray:
        """Embed texts, `EMBED_STEP` at a time, one caller at a time; rows in ``texts``'s order.

        Texts of like length go together (longest first), as sentence-transformers would
        order them in one call, so the steps pad no more than one call would. Between
        steps the lock is free (a search can embed its query) and `between_steps` runs.
        """
        if not self.embedder.loaded:
            self.embedder.load(pause=self.between_steps)
        vectors = np.zeros((len(texts), self.embedder.dim), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        for start in range(0, len(order), EMBED_STEP):
            if self.between_steps is not None:
                self.between_steps()
            rows = order[start:start + EMBED_STEP]
            with self._embed_lock:
                vectors[rows] = self.embedder.embed([texts[i] for i in rows])
        return vectors

    def _apply(self, pending: Sequence[_Pending]) -> int:
        """Embed pending files and swap their chunks in; returns the chunks embedded."""
        texts = [embedding_text(c) for p in pending for c in p.chunks]
        vectors = self._embed(texts)
        row = 0
        with self._lock:
            for item in pending:
                rows = vectors[row:row + len(item.chunks)]
                row += len(item.chunks)
                if self._versions.get(item.rel, 0) == item.version:
                    self._replace(item, rows)
        return len(texts)

    def _replace(self, item: _Pending, vectors: np.ndarray) -> None:
        """Put one file's new chunks in place of its old ones (under the lock)."""
        self._drop(item.rel)
        ids = list(range(self._next_id, self._next_id + len(item.chunks)))
        self._next_id += len(item.chunks)
        self.store.add(ids, vectors)
        for chunk_id, chunk in zip(ids, item.chunks, strict=True):
            self._chunks[chunk_id] = chunk
            self._lexical.add(chunk_id, embedding_text(chunk))
        self._files[item.rel] = _FileEntry(item.digest, item.language, ids)
        self._bump(item.rel)

    def _drop(self, rel: str) -> bool:
        """Remove one file's chunks (under the lock); True if it was indexed."""
        entry = self._files.pop(rel, None)
        if entry is None:
            return False
        self.store.remove(entry.chunk_ids)
        self._lexical.remove(entry.chunk_ids)
        for chunk_id in entry.chunk_ids:
            self._chunks.pop(chunk_id, None)
        self._bump(rel)
        return True

    def _bump(self, rel: str) -> None:
        """Record that a file changed in the index (under the lock)."""
        self._versions[rel] = self._versions.get(rel, 0) + 1
        self._dirty = True

    def _prepare(self, rel: str, text: str, version: int) -> _Pending:
        """Chunk a file's text for embedding."""
        language = language_for_path(rel)
        chunks = chunk_text(rel, redact(text), language, self.limits)  # no secret is indexed
        return _Pending(rel, content_hash(text), language or fallback_language(rel), chunks,
                        version)

    # ----- live updates ------------------------------------------------------------------

    def update_file(self, path: str | os.PathLike[str], text: str) -> bool:
        """Index a file's current (possibly unsaved) text; False if the path may not be indexed.

        This embeds the file's chunks: call it after a pause in typing or on save,
        not on every keystroke.
        """
        rel = self.walker.relative(path)
        if rel is None or not self.walker.accepts(rel):
            return False
        self._ensure_loaded()
        if len(text.encode("utf-8", errors="replace")) > self.walker.max_bytes or (
                "\x00" in text[:8192]):
            self.remove_file(rel)
            return False
        entry, version = self._read_version(rel)
        if entry is not None and entry.digest == content_hash(text):
            return True
        self._apply([self._prepare(rel, text, version)])
        return True

    def remove_file(self, path: str | os.PathLike[str]) -> int:
        """Forget a file, or every file under a folder; returns how many were removed."""
        rel = self.walker.relative(path)
        if rel is None:
            return 0
        self._ensure_loaded()
        with self._lock:
            doomed = [r for r in self._files if r == rel or r.startswith(rel + "/")]
            for r in doomed:
                self._drop(r)
            return len(doomed)

    def apply_changes(self, changed: Iterable[str], deleted: Iterable[str]) -> None:
        """Re-read changed files from disk and forget deleted ones (the watcher's callback)."""
        changed, deleted = list(changed), list(deleted)
        for path in deleted:
            self.remove_file(path)
        if any(Path(p).name in IGNORE_FILES for p in changed + deleted):
            self.prune()
        for path in changed:
            file = self.root / path if not Path(path).is_absolute() else Path(path)
            if file.is_dir():
                continue
            text = self.walker.read(file) if self.walker.accepts(file) else None
            if text is None:
                self.remove_file(file)
            else:
                self.update_file(file, text)

    def prune(self) -> int:
        """Forget indexed files that the ignore and secret rules now exclude; returns how many."""
        self._ensure_loaded()
        doomed = [rel for rel in self.files() if not self.walker.accepts(rel)]
        with self._lock:
            for rel in doomed:
                self._drop(rel)
        return len(doomed)

    # ----- search ------------------------------------------------------------------------

    def search(self, query: str, k: int = 8, exclude_paths: Iterable[str | os.PathLike[str]] = (),
               budget_ms: float | None = None) -> list[SearchResult]:
        """The `k` chunks best matching `query` (dense + lexical, fused), none from excluded paths.

        With `budget_ms`, the slower of the two retrievers is skipped when it would
        not fit in what is left of the budget (or when the embedder is busy or not
        loaded yet: a build loads it, and so does a search without a budget).
        """
        start = time.monotonic()
        self._ensure_loaded()
        if not query.strip() or k <= 0:
            return []
        excluded = self._excluded_ids(exclude_paths)
        depth = max(3 * k, 20)
        runs: dict[str, list[tuple[int, float]]] = {}
        for name in sorted(self._cost_ms, key=self._cost_ms.__getitem__):
            if not self._affordable(name, start, budget_ms):
                continue
            began = time.monotonic()
            hits = self._run(name, query, depth, excluded, budget_ms is not None)
            if hits is not None:
                runs[name] = hits
                self._learn(name, (time.monotonic() - began) * 1000)
        return self._fuse(runs, k)

    def _affordable(self, name: str, start: float, budget_ms: float | None) -> bool:
        """True if a retriever's expected time fits in the remaining budget."""
        if budget_ms is None:
            return True
        if name == "dense" and not self.embedder.loaded:
            return False  # its build loads it
        spent = (time.monotonic() - start) * 1000
        if spent + self._cost_ms[name] <= budget_ms:
            return True
        self._cost_ms[name] *= 0.9  # forget a slow spell: retry once the estimate fits again
        return False

    def _learn(self, name: str, elapsed_ms: float) -> None:
        """Update a retriever's expected cost (moving average)."""
        self._cost_ms[name] = 0.7 * self._cost_ms[name] + 0.3 * elapsed_ms

    def _run(self, name: str, query: str, depth: int, excluded: frozenset[int],
             hurry: bool) -> list[tuple[int, float]] | None:
        """Hits of one retriever, or None if it was skipped."""
        if name == "lexical":
            with self._lock:
                return self._lexical.search(query, depth, excluded)
        if not self._embed_lock.acquire(blocking=not hurry):
            return None  # a build or update is embedding: do not wait for it
        try:
            vector = self.embedder.embed([query])[0]
        except EmbedderUnavailable as exc:
            if not hurry:
                raise
            log.warning("dense retrieval unavailable, using lexical only: %s", exc)
            return None
        finally:
            self._embed_lock.release()
        with self._lock:
            hits = self.store.search(vector, depth + len(excluded))
        return [(i, s) for i, s in hits if i not in excluded][:depth]

    def _excluded_ids(self, paths: Iterable[str | os.PathLike[str]]) -> frozenset[int]:
        """Chunk ids of the excluded files."""
        ids: set[int] = set()
        with self._lock:
            for path in paths:
                rel = self.walker.relative(path) or os.fspath(path).replace("\\", "/")
                entry = self._files.get(rel)
                if entry is not None:
                    ids.update(entry.chunk_ids)
        return frozenset(ids)

    def _fuse(self, runs: dict[str, list[tuple[int, float]]], k: int) -> list[SearchResult]:
        """Reciprocal rank fusion; a chunk overlapping a better-ranked one is dropped."""
        fused: dict[int, float] = {}
        raw: dict[str, dict[int, float]] = {name: dict(hits) for name, hits in runs.items()}
        for hits in runs.values():
            for rank, (chunk_id, _) in enumerate(hits):
                fused[chunk_id] = fused.get(chunk_id, 0.0) + 1.0 / (RRF_K + rank + 1)
        best = sorted(fused.items(), key=lambda item: (-item[1], item[0]))
        results: list[SearchResult] = []
        with self._lock:
            for chunk_id, score in best:
                chunk = self._chunks.get(chunk_id)
                if chunk is not None and not any(_overlap(chunk, r.chunk) for r in results):
                    results.append(SearchResult(chunk, score, raw.get("dense", {}).get(chunk_id),
                                                raw.get("lexical", {}).get(chunk_id)))
                if len(results) == k:
                    break
        return results

    # ----- inspection --------------------------------------------------------------------

    def stats(self) -> IndexStats:
        """Files, chunks and files per language currently in the index."""
        self._ensure_loaded()
        with self._lock:
            languages: dict[str, int] = {}
            for entry in self._files.values():
                languages[entry.language] = languages.get(entry.language, 0) + 1
            return IndexStats(len(self._files), len(self._chunks), dict(sorted(languages.items())))

    def chunks_of(self, path: str | os.PathLike[str]) -> list[Chunk]:
        """The indexed chunks of one file, in line order."""
        rel = self.walker.relative(path) or os.fspath(path)
        self._ensure_loaded()
        with self._lock:
            entry = self._files.get(rel)
            ids = entry.chunk_ids if entry else []
            return sorted((self._chunks[i] for i in ids), key=lambda c: c.start_line)

    def files(self) -> list[str]:
        """Root-relative paths of the indexed files."""
        self._ensure_loaded()
        with self._lock:
            return sorted(self._files)


class _Build:
    """One run of `RepoIndex.build`."""

    def __init__(self, index: RepoIndex, progress: Callable[[IndexProgress], None] | None,
                 cancel: threading.Event | None) -> None:
        """A build of `index` reporting to `progress` and stopping when `cancel` is set."""
        self.index = index
        self.progress = progress
        self.cancel = cancel or threading.Event()
        self.start = time.monotonic()
        self.last_report = 0.0
        self.last_save = self.start
        self.total = 0
        self.done = 0
        self.reused = 0
        self.embedded = 0
        self.pending: list[_Pending] = []

    def run(self) -> IndexStats:
        """Scan, embed what changed, drop what disappeared, save."""
        index = self.index
        index._ensure_loaded()
        self.report("scanning", force=True)
        files = []
        for source in index.walker.walk():
            if self.cancel.is_set():
                break
            files.append(source)
            if len(files) % SCAN_STEP == 0 and index.between_steps is not None:
                index.between_steps()
        self.total = len(files)
        seen: set[str] = set()
        for source in files:
            if self.cancel.is_set():
                break
            self.visit(source.rel, source.path, seen)
            self.done += 1
            self.report("indexing", source.rel)
        if not self.cancel.is_set():
            self.flush()
            self.forget_missing(seen)
        self.report("saving", force=True)
        index.save()
        stats = index.stats()
        self.report("done", force=True)
        return IndexStats(stats.files, stats.chunks, stats.languages,
                          round(time.monotonic() - self.start, 3), self.reused, self.embedded,
                          self.cancel.is_set())

    def visit(self, rel: str, path: Path, seen: set[str]) -> None:
        """Hash one file; queue it for embedding if it changed."""
        try:
            data = path.read_bytes()
        except OSError:
            return
        text = decode_text(data) if len(data) <= self.index.walker.max_bytes else None
        if text is None:
            return
        seen.add(rel)
        entry, version = self.index._read_version(rel)
        if entry is not None and entry.digest == content_hash(text):
            self.reused += 1
            return
        self.pending.append(self.index._prepare(rel, text, version))
        if sum(len(p.chunks) for p in self.pending) >= EMBED_BATCH:
            self.flush()

    def flush(self) -> None:
        """Embed and apply the queued files; save now and then during long builds."""
        if self.pending:
            self.report("embedding", force=True)  # the first batch also loads the embedding model
            self.embedded += self.index._apply(self.pending)
            self.pending = []
            self.report("indexing", force=True)
        if time.monotonic() - self.last_save > SAVE_EVERY_S:
            self.index.save()
            self.last_save = time.monotonic()

    def forget_missing(self, seen: set[str]) -> None:
        """Drop files that are no longer on disk (or no longer indexable)."""
        with self.index._lock:
            for rel in [r for r in self.index._files if r not in seen]:
                self.index._drop(rel)

    def report(self, phase: str, path: str | None = None, force: bool = False) -> None:
        """Call the progress callback, at most ten times a second unless forced."""
        now = time.monotonic()
        if self.progress is None or (not force and now - self.last_report < 0.1):
            return
        self.last_report = now
        chunks = len(self.index._chunks)
        self.progress(IndexProgress(phase, self.done, self.total, chunks, now - self.start, path))
