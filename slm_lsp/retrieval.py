"""Repository context for completion prompts: hybrid search, packed into a token budget.

The retrieved files sit at the very start of the FIM prompt, so the model's KV
cache is only reused while they stay byte-identical. Results are therefore
cached per *band* (the cursors whose prompt text starts on the same line, about
64 lines; a region warm-up prepares a band with its context) or, when the caller
does not say, per cursor *region* (the enclosing top-level block plus a coarse
line bucket); not per keystroke, and in a stable order (by path, then line).

No protocol types here: the index feature owns the `RepoIndex` and hands it to
an `IndexRetriever`, which the model host calls as the engine's ``Retriever``.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from indexer.chunker import Chunk
from indexer.index import RepoIndex, SearchResult
from indexer.walker import is_secret_path
from prompts.fim import ContextFile, fit_suffix

from .context import CursorContext

log = logging.getLogger(__name__)

QUERY_LINES = 15
"""Lines of text above the cursor used as the search query."""
QUERY_CHARS = 1500
"""Longest query sent to the index (the embedder truncates long inputs anyway)."""
BUCKET_LINES = 40
"""Inside one long block, retrieval is redone every this many lines."""
ANCHOR_SCAN = 400
"""How far above the cursor to look for the enclosing top-level block."""
MIN_CUT_LINES = 4
"""A chunk cut to fit the budget keeps at least this many lines, else it is dropped."""
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{2,}")


@dataclass(frozen=True)
class Region:
    """Where the cursor is, coarsely: retrieval is redone only when this changes."""

    anchor: int
    """0-based line of the enclosing top-level block's first line (-1: none found)."""
    anchor_digest: str
    bucket: int


def region_of(prefix: str, bucket_lines: int = BUCKET_LINES) -> Region:
    """The region of a cursor from the text before it (the cursor line's text is ignored)."""
    cursor = prefix.count("\n")
    cut = len(prefix)
    for _ in range(ANCHOR_SCAN + 1):  # only the last lines matter: no split of a huge file
        cut = prefix.rfind("\n", 0, cut)
        if cut < 0:
            break
    lines = prefix[cut + 1:].split("\n")
    base = cursor - (len(lines) - 1)
    indented_below = bool(lines[-1][:1].isspace())
    for i in range(len(lines) - 2, -1, -1):
        line = lines[i]
        if not line.strip():
            continue
        if not line[0].isspace() and indented_below:
            digest = hashlib.sha1(line.encode("utf-8", "replace")).hexdigest()[:12]
            return Region(base + i, digest, (cursor - base - i) // bucket_lines)
        indented_below = line[0].isspace()
    return Region(-1, "", cursor // bucket_lines)


def build_query(ctx: CursorContext, lines: int = QUERY_LINES) -> str:
    """Search text for a cursor: identifiers near it first, then the lines above it.

    The lines start at the enclosing top-level block when that is closer than
    ``lines``, so a function's neighbours above do not steer its retrieval.
    """
    cursor = ctx.prefix.count("\n")  # the cursor's line; the prefix is split only above it
    start = max(cursor - lines, region_of(ctx.prefix).anchor, 0)
    above = [x for x in ctx.prefix.rsplit("\n", cursor - start + 1)[-(cursor - start + 1):]
             if x.strip()]
    near = "\n".join(above[-4:]) + "\n" + "\n".join(ctx.suffix.split("\n", 2)[:2])
    idents = list(dict.fromkeys(reversed(_IDENT.findall(near))))
    body = "\n".join(x.strip() for x in above)
    query = " ".join(idents) + "\n" + body
    return query[:QUERY_CHARS].strip()


def uri_path(uri: str) -> str | None:
    """The file system path of a `file:` URI, else None."""
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        return None
    path = unquote(parsed.path)
    if re.match(r"^/[A-Za-z]:", path):  # file:///C:/x on Windows
        path = path[1:]
    return path


def pack(results: Iterable[SearchResult], budget: int,
         count: Callable[[str], int]) -> tuple[ContextFile, ...]:
    """The best chunks that fit in ``budget`` tokens, grouped per file, ordered by path and line.

    Whole chunks are taken in rank order; the room left then gets the head of
    the best chunk that did not fit. Each piece is charged two extra tokens, so
    the assembled text (with its file separator tokens and the blank lines
    between chunks) stays within the budget however the tokenizer joins pieces.
    """
    chosen: dict[str, list[Chunk]] = {}
    used = 0
    skipped: list[Chunk] = []
    for result in results:
        cost = _cost(result.chunk, chosen, count)
        if used + cost <= budget:
            chosen.setdefault(result.chunk.path, []).append(result.chunk)
            used += cost
        else:
            skipped.append(result.chunk)
    for chunk in skipped:
        room = budget - used - (_cost(chunk, chosen, count) - count(chunk.text))
        cut = _cut(chunk, room, count) if room > 0 else None
        if cut is not None:
            chosen.setdefault(cut.path, []).append(cut)
            break
    return tuple(
        ContextFile(path, "\n\n".join(c.text.rstrip("\n") for c in
                                      sorted(chunks, key=lambda c: c.start_line)) + "\n")
        for path, chunks in sorted(chosen.items())
    )


def _cost(chunk: Chunk, chosen: dict[str, list[Chunk]], count: Callable[[str], int]) -> int:
    """Tokens a chunk adds: its text, a margin, and its file's header if that is new."""
    head = 0 if chunk.path in chosen else count(chunk.path + "\n") + 2
    return head + count(chunk.text) + 2


def _cut(chunk: Chunk, room: int, count: Callable[[str], int]) -> Chunk | None:
    """The chunk's leading whole lines within ``room`` tokens, or None if too few fit."""
    head = fit_suffix(chunk.text, room, count)
    n = head.count("\n") + (0 if head.endswith("\n") else 1)
    if n < MIN_CUT_LINES or count(head) > room:
        return None
    return Chunk(chunk.path, chunk.language, chunk.start_line, chunk.start_line + n - 1,
                 head, chunk.symbol, chunk.kind)


@dataclass
class _Entry:
    files: tuple[ContextFile, ...]
    complete: bool
    """False when dense retrieval was skipped: worth retrying after a while."""
    at: float


@dataclass
class RetrievalStats:
    """How retrieval has been doing (for logs and tests)."""

    calls: int = 0
    hits: int = 0
    searches: int = 0
    search_ms_total: float = 0.0
    search_ms_max: float = 0.0
    last_ms: float = 0.0

    @property
    def search_ms_mean(self) -> float:
        """Mean time of the searches that ran (cache misses)."""
        return self.search_ms_total / self.searches if self.searches else 0.0


class IndexRetriever:
    """The engine's ``Retriever`` over a `RepoIndex`, cached per document region."""

    def __init__(self, count_tokens: Callable[[str], int], *, budget_ms: float = 100,
                 k: int = 6, cache_size: int = 64, retry_s: float = 3.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """A retriever with no index yet (it returns nothing until `index` is set)."""
        self.count_tokens = count_tokens
        self.budget_ms = budget_ms
        self.k = k
        self.retry_s = retry_s
        self.clock = clock
        self.index: RepoIndex | None = None
        """The index to search; set once it is loaded (None: no context)."""
        self.stats = RetrievalStats()
        self._cache: OrderedDict[tuple[object, ...], _Entry] = OrderedDict()
        self._size = cache_size
        self._epoch = 0
        self._lock = threading.Lock()

    def invalidate(self) -> None:
        """Forget cached results (after a build finished: better context is available)."""
        with self._lock:
            self._epoch += 1
            self._cache.clear()

    def __call__(self, ctx: CursorContext, token_budget: int) -> Sequence[ContextFile]:
        """Context files for ``ctx`` within ``token_budget`` tokens; stable within a region."""
        index = self.index
        if index is None or token_budget <= 0:
            return ()
        start = time.perf_counter()
        place = ("band", ctx.band) if ctx.band is not None else region_of(ctx.prefix)
        key = (ctx.uri, place, token_budget, self._epoch)
        with self._lock:
            self.stats.calls += 1
            entry = self._cache.get(key)
            if entry is not None and (entry.complete or self.clock() - entry.at < self.retry_s):
                self._cache.move_to_end(key)
                self.stats.hits += 1
                return entry.files
        files, complete = self._retrieve(index, ctx, token_budget)
        self._remember(key, entry, files, complete)
        elapsed = (time.perf_counter() - start) * 1000
        self._record(elapsed)
        log.info("retrieved %d files (%s) for %s:%d in %.1f ms%s", len(files),
                 ", ".join(f.path for f in files) or "none", ctx.path, ctx.line, elapsed,
                 "" if complete else " (lexical only)")
        return self._cache_files(key, files)

    def _retrieve(self, index: RepoIndex, ctx: CursorContext,
                  budget: int) -> tuple[tuple[ContextFile, ...], bool]:
        """Search and pack; the flag says whether dense retrieval took part."""
        query = build_query(ctx)
        if not query:
            return (), True
        current = [p for p in (ctx.path, uri_path(ctx.uri)) if p]
        results = index.search(query, k=self.k, exclude_paths=current, budget_ms=self.budget_ms)
        own = {_norm(p) for p in current}
        kept = [r for r in results
                if not is_secret_path(r.chunk.path) and _norm(r.chunk.path) not in own
                and not _same_file(index, r.chunk.path, current)]
        complete = not kept or any(r.dense is not None for r in kept)
        return pack(kept, budget, self.count_tokens), complete

    def _remember(self, key: tuple[object, ...], old: _Entry | None,
                  files: tuple[ContextFile, ...], complete: bool) -> None:
        """Cache a result; an incomplete retry that found the same files keeps its entry."""
        with self._lock:
            if old is not None and old.files == files:
                old.complete, old.at = complete, self.clock()
                return
            self._cache[key] = _Entry(files, complete, self.clock())
            self._cache.move_to_end(key)
            while len(self._cache) > self._size:
                self._cache.popitem(last=False)

    def _cache_files(self, key: tuple[object, ...], files: tuple[ContextFile, ...]) -> tuple[
            ContextFile, ...]:
        """The cached object for ``key`` (identical to ``files`` in content)."""
        with self._lock:
            entry = self._cache.get(key)
            return entry.files if entry is not None else files

    def _record(self, elapsed_ms: float) -> None:
        """Add one search's duration to the stats."""
        with self._lock:
            s = self.stats
            s.searches += 1
            s.search_ms_total += elapsed_ms
            s.search_ms_max = max(s.search_ms_max, elapsed_ms)
            s.last_ms = elapsed_ms


def _norm(path: str) -> str:
    """A path in `/` form without a leading `./`."""
    text = path.replace("\\", "/")
    return text[2:] if text.startswith("./") else text


def _same_file(index: RepoIndex, rel: str, current: Sequence[str]) -> bool:
    """True if a root-relative result path names one of the current file's paths."""
    target = (index.root / rel).resolve()
    for path in current:
        candidate = Path(path)
        if not candidate.is_absolute():
            candidate = index.root / candidate
        if candidate.resolve() == target:
            return True
    return False
