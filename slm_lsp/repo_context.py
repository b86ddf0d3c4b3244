"""Repository context for a completion prompt: the definitions the cursor's code refers
to, then (if the mode says so) similar chunks from the index in the tokens left.

The engine calls a ``RepoContext`` as its ``Retriever``. Definitions come from
``symbols.Resolver`` (imports followed to files, the enclosing class, bases, same-file
definitions outside the prompt window) and are packed as stubs (``symbols.stubs``), the
most relevant nearest the current file, one `<|file_sep|>` section per file. Results are
cached per document and band (the line where the prompt's text starts), so the context
stays byte-identical while the user types in one region and the KV cache is reused.

``slm.index.context``: ``definitions``, ``similar`` (the index's hybrid search alone, as
before) or ``both``; ``off`` when ``slm.index.enabled`` is off.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from prompts.fim import ContextFile

from .context import CursorContext
from .retrieval import IndexRetriever, uri_path
from .symbols.resolve import CLASS_KINDS, Found, Resolver
from .symbols.stubs import class_stub, constant_stub, function_stub
from .symbols.textcache import text_cache

log = logging.getLogger(__name__)

MODES = ("definitions", "similar", "both")
WINDOW_AFTER = 24
"""Lines below the cursor taken as shown by the prompt (the suffix budget's usual reach)."""
MAX_STUB = 96
"""Tokens a full stub may take; a larger one (a class with many members) is given in its
compact form, so that one class does not take the room of several names."""
MIN_SIMILAR = 64
"""Tokens left for similar chunks below which none are asked for."""


Definitions = Callable[[CursorContext, int], tuple[tuple[ContextFile, ...], int]]
"""(context, token budget) -> (stubs as context files, tokens used): a DefinitionContext."""


def stub_of(found: Found, compact: bool = False) -> str:
    """A full stub for a name the prompt shows in use; for one it does not (or with
    ``compact``), the compact form (a signature; a class's header and constructor), so
    more such names fit."""
    d = found.definition
    compact = compact or not found.shown
    if d.kind in CLASS_KINDS:
        if compact:
            return class_stub(d, [m for m in found.members if m.name in ("__init__", "constructor")],
                              compact=True)
        return class_stub(d, found.members)
    if d.kind == "constant":
        return constant_stub(d)
    return function_stub(d, compact=compact)


@dataclass
class ContextStats:
    calls: int = 0
    hits: int = 0


class DefinitionContext:
    """Stubs of the definitions a cursor's code refers to, within a token budget."""

    def __init__(self, resolver: Resolver, count_tokens: Callable[[str], int],
                 cache_size: int = 64) -> None:
        self.resolver = resolver
        # Stub and path token counts are remembered: the same stubs recur from band to band.
        self.count_tokens = text_cache(maxsize=4096, max_chars=1 << 20)(count_tokens)
        self.stats = ContextStats()
        self._cache: OrderedDict[tuple[object, ...], tuple[tuple[ContextFile, ...], int]] = \
            OrderedDict()
        self._size = cache_size
        self._lock = threading.Lock()

    def __call__(self, ctx: CursorContext, token_budget: int) -> tuple[tuple[ContextFile, ...], int]:
        """(context files, tokens used) for ``ctx``."""
        path = uri_path(ctx.uri)
        if path is None or token_budget <= 0:
            return (), 0
        start = time.perf_counter()
        band = ctx.band if ctx.band is not None else max(0, ctx.line - 64)
        key = (ctx.uri, band, token_budget)
        with self._lock:
            self.stats.calls += 1
            hit = self._cache.get(key)
            if hit is not None:
                self.stats.hits += 1
                self._cache.move_to_end(key)
                return hit
        text = ctx.prefix + ctx.suffix
        found = self.resolver.around(os.path.abspath(path), text, ctx.language, ctx.line,
                                     (band, ctx.line + WINDOW_AFTER))
        result = self.pack(found, token_budget)
        elapsed = (time.perf_counter() - start) * 1000
        with self._lock:
            self._cache[key] = result
            while len(self._cache) > self._size:
                self._cache.popitem(last=False)
        log.debug("definitions for %s:%d: %d found, %d tokens in %.1f ms", ctx.path, ctx.line,
                  len(found), result[1], elapsed)
        return result

    def pack(self, found: Sequence[Found], budget: int) -> tuple[tuple[ContextFile, ...], int]:
        """Stubs in order of ``found`` while they fit; files ordered so that the most relevant
        one comes last (nearest the current file in the prompt)."""
        by_file: dict[str, list[str]] = {}
        used = 0
        for item in found:
            stub = stub_of(item)
            size = self.count_tokens(stub + "\n")
            if size > MAX_STUB:  # a large class: its header and constructor say enough
                stub = stub_of(item, compact=True)
                size = self.count_tokens(stub + "\n")
            rel = self.resolver.rel(item.definition.path)
            cost = size + 2 + (0 if rel in by_file else self.count_tokens(rel + "\n") + 2)
            if used + cost > budget:
                continue
            by_file.setdefault(rel, []).append(stub)
            used += cost
        files = [ContextFile(rel, "\n\n".join(stubs) + "\n") for rel, stubs in by_file.items()]
        return tuple(reversed(files)), used


class RepoContext:
    """The engine's ``Retriever``: definitions and/or similar chunks, by ``mode``."""

    def __init__(self, definitions: Definitions | None, similar: IndexRetriever | None,
                 mode: str = "both", count_tokens: Callable[[str], int] | None = None) -> None:
        if mode not in MODES + ("off",):
            raise ValueError(f"unknown repository context mode {mode!r}")
        self.definitions = definitions
        self.similar = similar
        self.mode = mode
        self.count_tokens = count_tokens
        self._logged: OrderedDict[tuple[str, int | None], tuple[ContextFile, ...]] = OrderedDict()

    def __call__(self, ctx: CursorContext, token_budget: int) -> Sequence[ContextFile]:
        if self.mode == "off":
            return ()
        files: tuple[ContextFile, ...] = ()
        used = 0
        if self.definitions is not None and self.mode in ("definitions", "both"):
            try:
                files, used = self.definitions(ctx, token_budget)
            except Exception:  # an unparsable file or a vanished one: no definitions, go on
                log.exception("definition context failed for %s", ctx.path)
        similar: Sequence[ContextFile] = ()
        left = token_budget - used
        if self.similar is not None and self.mode in ("similar", "both") and left >= MIN_SIMILAR:
            similar = self.similar(ctx, left)
        result = tuple(similar) + files
        self._log(ctx, result, used, len(files))
        return result

    def _log(self, ctx: CursorContext, result: tuple[ContextFile, ...], used: int,
             n_definitions: int) -> None:
        """One line per new context of a band (the benchmark reads the token counts)."""
        key = (ctx.uri, ctx.band)
        if self._logged.get(key) == result:
            return
        self._logged[key] = result
        while len(self._logged) > 256:
            self._logged.popitem(last=False)
        count = self.count_tokens
        tokens = sum(count(f"{f.path}\n{f.text}") + 1 for f in result) if count else -1
        log.info("repository context for %s:%d: %d tokens, %d definition files (%d tokens), "
                 "%d similar files", ctx.path, ctx.line, tokens, n_definitions, used,
                 len(result) - n_definitions)
