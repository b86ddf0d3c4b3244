"""SourceTree: the workspace's source files, for finding definitions and names."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from indexer.languages import language_for_path

from .definitions import definitions
from .syntax import WORD_RE, Definition
from .textcache import text_cache

log = logging.getLogger(__name__)


PARSED_CHARS = 2 << 20
"""Text (in characters) of the file versions whose definitions a `SourceTree` keeps. A
file's definitions hold its text about twice more (a class's text and its methods'), and
every keystroke makes a new version. With 256 versions whatever their size, the cap
before, the definitions the soak benchmark's server held (traced with tracemalloc) grew
from 9.6 to 21.6 MiB in 20 minutes, and still rose. 4 Mi characters came next; 2 Mi keeps
half of that memory at no cost the context benchmark could see (its p95 moved within the
noise of repeated runs, docs/design.md)."""


@text_cache(maxsize=32, max_chars=4 << 20)
def _words(text: str) -> frozenset[str]:
    """The identifiers of an open document's text (cached per text)."""
    return frozenset(WORD_RE.findall(text))


@dataclass
class _FileInfo:
    stamp: tuple[int, int]
    text: str
    words: frozenset[str]


class SourceTree:
    """Source files of a workspace, for looking definitions and names up.

    Open documents win over the file system. Files are listed from the
    repository index when there is one, else by walking the root (ignore
    rules applied), at most every ``rescan_s`` seconds.
    """

    def __init__(self, root: str | None, open_docs: Callable[[], Mapping[str, str]] = dict,
                 index: Callable[[], Any] = lambda: None, *, max_files: int = 5000,
                 rescan_s: float = 5.0) -> None:
        self.root = root
        self._open_docs = open_docs
        self._index = index
        self.max_files = max_files
        self.rescan_s = rescan_s
        self._files: dict[str, _FileInfo] = {}
        self._listing: list[str] = []
        self._listed_at = -1e9
        self._parsed = text_cache(maxsize=256, max_chars=PARSED_CHARS,
                                  versions=2)(definitions)
        """A file's definitions per version of its text (path, text, language)."""
        self._lock = threading.RLock()

    # files

    def list_files(self) -> list[str]:
        """Absolute paths of the workspace's source files (tree-sitter languages only)."""
        with self._lock:
            if time.monotonic() - self._listed_at < self.rescan_s:
                return self._listing
            self._listing = self._scan()
            self._listed_at = time.monotonic()
            return self._listing

    def _scan(self) -> list[str]:
        if not self.root:
            return []
        index = self._index()
        paths: Iterable[str]
        try:
            paths = [os.path.join(self.root, rel) for rel in index.files()] if index else []
        except Exception:  # an index that is still loading or broken: walk instead
            log.debug("index file listing failed", exc_info=True)
            paths = []
        if not paths:
            from indexer.walker import Walker

            # the walker resolves symlinks; the open documents and the index name files
            # under the root as the editor gave it, so paths are joined to that root
            paths = (os.path.join(self.root, f.rel) for f in Walker(self.root).walk())
        out: list[str] = []
        for path in paths:
            if language_for_path(path) is None:
                continue
            if len(out) >= self.max_files:
                log.info("symbol lookup scans the first %d files (and asks the index)",
                         self.max_files)
                break
            out.append(os.path.abspath(path))
        return out

    def text_of(self, path: str) -> str | None:
        """A file's current text: the open document's, else the file's (None if unreadable)."""
        docs = self._open_docs()
        if path in docs:
            return docs[path]
        info = self._info(path)
        return info.text if info else None

    def _info(self, path: str) -> _FileInfo | None:
        try:
            st = os.stat(path)
        except OSError:
            return None
        stamp = (st.st_mtime_ns, st.st_size)
        with self._lock:
            info = self._files.get(path)
            if info is not None and info.stamp == stamp:
                return info
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None
        info = _FileInfo(stamp, text, frozenset(WORD_RE.findall(text)))
        with self._lock:
            self._files[path] = info
        return info

    # lookups

    def definitions_in(self, path: str, text: str | None = None,
                       language: str | None = None) -> list[Definition]:
        """The definitions of one file (parsed once per version of its text)."""
        if text is None:
            text = self.text_of(path)
        language = language or language_for_path(path)
        if text is None or language is None:
            return []
        return self._parsed(text, language, path)

    def files_with(self, word: str, *, definitions: bool = False) -> list[str]:
        """Files (open documents first) in which ``word`` occurs as a whole word.

        For ``definitions`` in a repository too big to scan whole, files whose
        index chunks define ``word`` are added from the repository index.
        """
        docs = dict(self._open_docs())
        found = [p for p, t in docs.items() if word in t and word in _words(t)]
        listing = self.list_files()
        extra = self._index_hits(word) if definitions and len(listing) >= self.max_files else []
        for path in extra + listing:
            if path in docs or path in found:
                continue
            info = self._info(path)
            if info is not None and word in info.words:
                found.append(path)
        return found

    def _index_hits(self, word: str) -> list[str]:
        """Files whose indexed chunks define ``word``, from the repository index."""
        index = self._index()
        if index is None or not self.root:
            return []
        try:
            results = index.search(word, k=8, budget_ms=30)
        except Exception:
            log.debug("index search failed", exc_info=True)
            return []
        return [os.path.join(self.root, r.chunk.path) for r in results
                if r.chunk.symbol and r.chunk.symbol.split(".")[-1] == word]

    def find(self, name: str) -> list[Definition]:
        """Every definition named ``name`` in the workspace."""
        out: list[Definition] = []
        for path in self.files_with(name, definitions=True):
            out += [d for d in self.definitions_in(path) if d.name == name]
        return out

    def has_word(self, word: str) -> bool:
        """True if ``word`` occurs anywhere in the workspace's source files."""
        return bool(self.files_with(word))
