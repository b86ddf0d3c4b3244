"""The repository index's life cycle in the server: build, watch, debounce, yield.

After the editor's `initialized` the index of the workspace root is loaded and
brought up to date in a worker thread at a lower CPU priority, pausing while
completions run. A watchdog watcher and the editor's (debounced) unsaved edits
keep it current. Completions use it through `IndexRetriever` once it is complete
(a saved index at once, a new one after its first build); until then they get no
similar chunks. No protocol types here: what the
editor sees (progress, warnings, document texts) goes through an `IndexHost`,
which `slm_lsp.features.index` implements.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

from indexer import persist
from indexer.embedder import EmbedderUnavailable
from indexer.index import IndexProgress, RepoIndex, SearchResult
from indexer.walker import is_secret_path
from indexer.watcher import RepoWatcher

from .memory import trim
from .paths import index_dir
from .retrieval import IndexRetriever
from .settings import IndexSettings, Settings

log = logging.getLogger(__name__)

EDIT_DEBOUNCE_S = 1.5
"""Unsaved edits reach the index this long after the last change of a document."""
SAVE_DEBOUNCE_S = 0.2
"""Delay before a saved or closed document is re-indexed."""
SHUTDOWN_WAIT_S = 10.0
"""How long shutdown waits for a running build to stop and save."""
BACKGROUND_NICE = 10
"""Index threads run at this lower CPU priority so the model keeps its cores while typing."""


def searched(settings: IndexSettings) -> bool:
    """Whether the embedding index is built: repository context on and similar chunks wanted
    (definition context alone reads the source files, it needs no embeddings)."""
    return settings.enabled and settings.context != "definitions"


class IndexOff(Exception):
    """There is no index to search (no workspace folder, or ``index.enabled`` off)."""


class BuildReport(Protocol):
    """Progress of one build, as the editor is shown it."""

    def __call__(self, event: IndexProgress) -> None: ...

    def end(self, message: str) -> None: ...


class IndexHost(Protocol):
    """What the index needs from the server it runs in."""

    @property
    def root(self) -> str | None: ...

    def build_started(self, title: str) -> BuildReport: ...

    def warn(self, message: str) -> None: ...

    def document_text(self, uri: str) -> str | None: ...

    def yield_to_completions(self, max_wait: float = 30.0,
                             cancel: threading.Event | None = None) -> None: ...

    def count_tokens(self, text: str) -> int: ...


def lower_priority() -> None:
    """Give the calling thread a lower CPU priority (Linux threads only; elsewhere a no-op).

    Not SCHED_IDLE: tried, with the build's threads in that class the first request of
    a server building Django's index took 13.7 s instead of 0.4, most likely because an
    idle-class thread holding the GIL gets no core while llama.cpp's threads spin.
    """
    try:
        tid = threading.get_native_id()
        current = os.getpriority(os.PRIO_PROCESS, tid)
        if current < BACKGROUND_NICE:
            os.setpriority(os.PRIO_PROCESS, tid, BACKGROUND_NICE)
    except (AttributeError, OSError):
        pass


class WorkspaceIndex:
    """Owns the workspace's `RepoIndex`, its watcher and its build thread.

    The server keeps it as ``server.extensions["index"]``: other features read
    the index through its `files()` and `search()`, which are empty until it is
    loaded. What the editor sees of it goes through ``host`` (an `IndexHost`).
    """

    def __init__(self, host: IndexHost, settings: Settings,
                 make_index: Callable[[Path, Path, int], RepoIndex] | None = None) -> None:
        """Idle until `on_initialized`; the retriever returns nothing until the index loads.

        ``make_index(root, cache_dir, max_file_kb)`` opens an index (tests pass a light embedder).
        """
        self.host = host
        self.make_index = make_index or _open_index
        self.settings: IndexSettings = settings.index
        self.retriever = IndexRetriever(host.count_tokens,
                                        budget_ms=self.settings.retrieval_budget_ms)
        self.index: RepoIndex | None = None
        self.watcher: RepoWatcher | None = None
        self.loaded = threading.Event()
        """Set once the index is loaded (or known to be absent): searches may run."""
        self.ready = threading.Event()
        """Set after a build finished."""
        self._initialized = False
        self._warned = False
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self._timers: dict[str, threading.Timer] = {}
        self._deferred: dict[str, str] = {}
        """Documents (uri: path) whose re-index waits for the running build to end."""

    # ----- lifecycle ---------------------------------------------------------------------

    def building(self) -> bool:
        """True while an index build runs."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def on_initialized(self) -> None:
        """Start indexing the workspace root (called by the lifecycle feature)."""
        self._initialized = True
        self._follow(self.settings, self.settings)

    def on_settings(self, settings: Settings) -> None:
        """Follow `slm.index` changes: start, stop, or reopen with a new size limit."""
        old, new = self.settings, settings.index
        self.settings = new
        self.retriever.budget_ms = new.retrieval_budget_ms
        if self._initialized:
            self._follow(old, new)

    def _follow(self, old: IndexSettings, new: IndexSettings) -> None:
        running = self.index is not None
        if running and (not searched(new) or new.max_file_kb != old.max_file_kb):
            threading.Thread(target=self._restart, name="slm-index-restart", daemon=True).start()
        elif searched(new) and not running:
            self.start()

    def _restart(self) -> None:
        """Close the index (waiting for its build to stop), then reopen it if enabled."""
        self.stop()
        if self._initialized and searched(self.settings):
            self.start()

    def on_shutdown(self) -> None:
        """Stop the build and the watcher and save the index."""
        self._initialized = False
        self.stop()

    def start(self) -> None:
        """Open the index of the root and build it in the background."""
        root = self.host.root
        if not root or not Path(root).is_dir():
            log.info("no workspace folder: the repository index is off")
            return
        index = self.make_index(Path(root), index_dir(Path(root)), self.settings.max_file_kb)
        index.between_steps = self._step_aside
        with self._lock:
            self.index = index
            self.loaded.clear()
            self.ready.clear()
        self._spawn(index, first=True, replace=True)

    def stop(self) -> None:
        """Cancel the build, stop watching, drop pending edits, save; the index is closed."""
        with self._lock:
            index, self.index = self.index, None
            watcher, self.watcher = self.watcher, None
            timers, self._timers = list(self._timers.values()), {}
            self._deferred.clear()
            thread = self._thread
        self.retriever.index = None
        for timer in timers:
            timer.cancel()
        self._cancel.set()
        if watcher is not None:
            watcher.stop()
        if thread is not None and thread is not threading.current_thread():
            thread.join(SHUTDOWN_WAIT_S)
        if index is not None:
            _save(index)

    def reindex(self) -> bool:
        """Start an incremental rebuild; False if one is already running or there is no index."""
        index = self.index
        if index is None:
            return False
        return self._spawn(index, first=False)

    # ----- build thread ------------------------------------------------------------------

    def _spawn(self, index: RepoIndex, *, first: bool, replace: bool = False) -> bool:
        """Run `_build` in a daemon thread unless a build is running (``replace``: a build
        of a closed index may still be stopping; start anyway)."""
        with self._lock:
            if not replace and self._thread is not None and self._thread.is_alive():
                return False
            self._cancel = threading.Event()
            self._thread = threading.Thread(target=self._build, args=(index, first, self._cancel),
                                            name="slm-index-build", daemon=True)
            self._thread.start()
        return True

    def _build(self, index: RepoIndex, first: bool, cancel: threading.Event) -> None:
        """Load (the first time), watch, build and save, reporting progress; never raises."""
        progress: BuildReport | None = None
        message = "indexing stopped"
        lower_priority()
        self.host.yield_to_completions(cancel=cancel)
        try:
            progress = self.host.build_started("Indexing the repository")
            if first:
                self._load(index)
            message = self._run(index, progress, cancel)
        except Exception as exc:  # noqa: BLE001 - a broken index must not take the server down
            log.warning("indexing %s failed: %s", index.root, exc, exc_info=True)
            message = "indexing failed"
            if isinstance(exc, OSError) and exc.errno in _UNWRITABLE:
                self._warn(f"the repository index cannot be written in {index.cache_dir} "
                           f"({exc.strerror}); completions go on without repository context "
                           "until the server restarts with room there")
            elif not cancel.is_set() and self.index is index:
                self._warn(f"the repository index failed ({exc}); it will be rebuilt")
                message = self._rebuild_fresh(index, progress, cancel)
        finally:
            self.loaded.set()
            trim()  # the embedding batches' buffers, freed now
            if progress is not None:
                progress.end(message)
            with self._lock:
                deferred, self._deferred = self._deferred, {}
            for uri, path in deferred.items():
                self.schedule(uri, path, SAVE_DEBOUNCE_S)

    def _load(self, index: RepoIndex) -> None:
        """Read the saved index and start the watcher; completions use a saved index at once,
        a new one once its first build has ended."""
        existed = persist.exists(index.cache_dir)
        saved = index.load()
        if not saved and existed:
            self._warn("the saved repository index was unusable; rebuilding it")
        self._attach(index, complete=saved)

    def _attach(self, index: RepoIndex, complete: bool) -> None:
        """Make `index` the one searched (by completions too when it is ``complete``: a
        first build's partial index gives look-alikes of whatever it has reached, such as
        Django's AUTHORS file for a test module), watched and updated."""
        with self._lock:
            if self.index is not index:  # stopped (or replaced) meanwhile
                return
            if complete:
                self.retriever.index = index
            self.loaded.set()
            if self.watcher is not None:
                return
        # Watching Django's folders takes 0.5 s of CPU: at a quiet moment, and without the
        # lock, which the event loop takes to schedule re-indexing.
        self._step_aside()
        watcher = RepoWatcher(index.root, self._on_disk_changes, walker=index.walker)
        watcher.start()
        with self._lock:
            installed = self.index is index and self.watcher is None
            if installed:
                self.watcher = watcher
        if not installed:  # stopped, replaced or already watched meanwhile
            watcher.stop()

    def _run(self, index: RepoIndex, progress: BuildReport | None, cancel: threading.Event) -> str:
        """One build; returns the summary shown at the end of the progress."""
        try:
            if not index.embedder.loaded:
                # First, at the server's start: the model's imports cost ~4 s of CPU in
                # steps of up to 1.3 s that cannot pause once begun, so a step taken when a
                # completion arrives slows it by that much (measured: 1.25 s, first
                # request in a run of bench.scale). At the start the editor is opening
                # files and llama.cpp is loading the model; later the user types.
                if progress is not None:
                    progress(IndexProgress("loading", 0, 0, 0, 0.0))
                index.embedder.load(pause=self._step_aside)
            stats = index.build(progress=self._reporting(progress, cancel), cancel=cancel)
        except EmbedderUnavailable as exc:
            self._warn(f"repository context is off: {exc}")
            return "embedding model unavailable"
        if stats.cancelled:
            return "indexing cancelled"
        with self._lock:
            if self.index is index:
                self.retriever.index = index
        self.ready.set()
        self.retriever.invalidate()
        log.info("indexed %s: %d files, %d chunks (%d unchanged) in %.1fs", index.root,
                 stats.files, stats.chunks, stats.reused, stats.seconds)
        return f"{stats.files} files, {stats.chunks} chunks"

    def _rebuild_fresh(self, broken: RepoIndex, progress: BuildReport | None,
                       cancel: threading.Event) -> str:
        """Delete the saved index and build a new one from scratch (once)."""
        shutil.rmtree(broken.cache_dir, ignore_errors=True)
        fresh = RepoIndex(broken.root, broken.cache_dir, embedder=broken.embedder,
                          max_file_kb=self.settings.max_file_kb, limits=broken.limits)
        fresh.between_steps = self._step_aside
        fresh.load()
        with self._lock:
            if self.index is not broken:
                return "indexing stopped"
            self.index = fresh
        self._attach(fresh, complete=False)
        try:
            return self._run(fresh, progress, cancel)
        except Exception as exc:  # noqa: BLE001 - give up quietly after the retry
            log.warning("rebuilding the index of %s failed: %s", fresh.root, exc, exc_info=True)
            return "indexing failed"

    def _step_aside(self) -> None:
        """Before each step of index work: the thread at background priority, waiting
        while the user gets completions (`IndexHost.yield_to_completions`; until the build
        stops)."""
        lower_priority()
        self.host.yield_to_completions(cancel=self._cancel)

    def _reporting(self, report: BuildReport | None,
                   cancel: threading.Event) -> Callable[[IndexProgress], None]:
        """The build's progress callback: step aside for completions (until the build is
        cancelled), then report."""
        def on_event(event: IndexProgress) -> None:
            self.host.yield_to_completions(cancel=cancel)
            if report is not None:
                report(event)
        return on_event

    def _warn(self, message: str) -> None:
        """Log a warning; the first one is also shown to the user."""
        log.warning("%s", message)
        if not self._warned:
            self._warned = True
            self.host.warn(message)

    # ----- live updates ------------------------------------------------------------------

    def _on_disk_changes(self, changed: list[str], deleted: list[str]) -> None:
        """The watcher's callback: re-read changed files, forget deleted ones."""
        index = self.index
        if index is not None:
            lower_priority()
            index.apply_changes(changed, deleted)
            trim()  # the embedding batches' buffers
            log.debug("index updated from disk: %d changed, %d deleted", len(changed), len(deleted))

    def schedule(self, uri: str, path: str | None, delay: float) -> None:
        """Re-index a document's editor text ``delay`` seconds from now (restarting the wait).

        ``uri`` names the document for `IndexHost.document_text`; ``path`` is its file.
        """
        if self.index is None or path is None or not uri.startswith("file:"):
            return
        timer = threading.Timer(delay, self._update_document, args=(uri, path))
        timer.daemon = True
        with self._lock:
            old = self._timers.pop(uri, None)
            self._timers[uri] = timer
        if old is not None:
            old.cancel()
        timer.start()

    def _update_document(self, uri: str, path: str) -> None:
        """Index an open document's unsaved text, or a closed one's file on disk."""
        with self._lock:
            self._timers.pop(uri, None)
        index = self.index
        if index is None or not self.loaded.is_set():
            return
        with self._lock:
            thread = self._thread
            if thread is not None and thread.is_alive() and thread is not threading.current_thread():
                # A build reads the files anyway; this document's editor text follows it,
                # instead of a second thread chunking and embedding beside it (and loading
                # the embedding model alongside a first build).
                self._deferred[uri] = path
                return
        self._step_aside()
        start = time.perf_counter()
        try:
            text = self.host.document_text(uri)
            if text is not None:
                index.update_file(path, text)
            else:
                index.apply_changes([path], [])
        except Exception as exc:  # noqa: BLE001 - keep serving; the watcher catches up
            log.warning("cannot index %s: %s", path, exc)
            return
        trim()  # the embedding batches' buffers
        log.debug("re-indexed %s in %.0f ms", path, (time.perf_counter() - start) * 1000)

    # ----- search ------------------------------------------------------------------------

    def off_reason(self) -> str:
        """Why there is no search index, in words the user can act on."""
        if self.settings.enabled and self.settings.context == "definitions":
            return ('the search index is not built: slm.index.context is "definitions", which '
                    'reads the source files directly; set it to "similar" or "both" to search')
        return "the repository index is off (slm.index.enabled is false, or no workspace folder)"

    def search_json(self, query: str, k: int) -> dict[str, Any]:
        """The `slm-lsp search --json` answer for ``query`` (blocking); `IndexOff` when
        there is no index, `EmbedderUnavailable` when it cannot embed the query."""
        index = self.index
        if index is None:
            raise IndexOff(self.off_reason())
        self.loaded.wait(60)
        results = index.search(query, k=k)
        rows = [{"path": r.chunk.path, "start_line": r.chunk.start_line,
                 "end_line": r.chunk.end_line, "score": round(r.score, 6),
                 "symbol": r.chunk.symbol}
                for r in results if not is_secret_path(r.chunk.path)]
        return {"results": rows}

    # RepoIndex's read API for other features (`server.extensions["index"]`): safe to call
    # at any time, empty until the index is complete (a saved one loaded, or a first build
    # ended): a partial index would list only the files a first build has reached, and the
    # symbol lookup, which lists files through it, would miss the rest.

    def files(self) -> list[str]:
        """Root-relative paths of the indexed files ([] while there is no complete index)."""
        index = self.retriever.index
        return index.files() if index is not None else []

    def search(self, query: str, k: int = 8, exclude_paths: Iterable[str] = (),
               budget_ms: float | None = None) -> list[SearchResult]:
        """`RepoIndex.search` on the complete index, without secrets ([] while there is none)."""
        index = self.retriever.index
        if index is None:
            return []
        results = index.search(query, k=k, exclude_paths=exclude_paths, budget_ms=budget_ms)
        return [r for r in results if not is_secret_path(r.chunk.path)]


_UNWRITABLE = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)
"""Write errors that a rebuild cannot cure: a full disk, a read-only or forbidden cache."""


def _open_index(root: Path, cache_dir: Path, max_file_kb: int) -> RepoIndex:
    """The index of ``root`` with the real embedder (loaded on first use)."""
    return RepoIndex(root, cache_dir, max_file_kb=max_file_kb)


def _save(index: RepoIndex) -> None:
    """Save the index if it changed, logging failures."""
    try:
        if index.save():
            log.info("saved the index of %s", index.root)
    except Exception as exc:  # noqa: BLE001 - shutting down: nothing else to do
        log.warning("cannot save the index of %s: %s", index.root, exc)
