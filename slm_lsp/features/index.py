"""The repository index inside the server: background build, live updates, search commands.

After `initialized` the index of the workspace root is loaded and brought up to
date in a worker thread, reported with `$/progress` and `slm/status`. A
watchdog watcher and the editor's (debounced) unsaved edits keep it current.
Completions use it through `slm_lsp.retrieval.IndexRetriever`; until it is
loaded they simply get no repository context.

Commands: `slm.search` (query, optional k) returns the same JSON as
`slm-lsp search --json`; `slm.reindex` starts a rebuild and returns at once.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams
from pygls.uris import to_fs_path

from indexer import persist
from indexer.embedder import EmbedderUnavailable
from indexer.index import IndexProgress, RepoIndex, SearchResult
from indexer.walker import is_secret_path
from indexer.watcher import RepoWatcher

from ..backends.base import BackendError
from ..memory import trim
from ..paths import index_dir
from ..retrieval import IndexRetriever
from ..server import SlmServer
from ..settings import IndexSettings, Settings
from ._common import REQUEST_FAILED

log = logging.getLogger(__name__)

EDIT_DEBOUNCE_S = 1.5
"""Unsaved edits reach the index this long after the last change of a document."""
SAVE_DEBOUNCE_S = 0.2
"""Delay before a saved or closed document is re-indexed."""
REPORT_EVERY_S = 0.5
"""At most this often a `$/progress` report is sent during a build."""
SHUTDOWN_WAIT_S = 10.0
"""How long shutdown waits for a running build to stop and save."""
BACKGROUND_NICE = 10
"""Index threads run at this lower CPU priority so the model keeps its cores while typing."""
_tokens = itertools.count(1)


class _Progress:
    """`$/progress` (when the client allows it) and `slm/status` for one build."""

    def __init__(self, ls: SlmServer, title: str) -> None:
        """Create the client's progress token (blocking; call from a worker thread)."""
        self.ls = ls
        self.token = self._create() if _supports_progress(ls) else None
        self.last = 0.0
        ls.status("indexing", title)
        self._send(types.WorkDoneProgressBegin(title=title, cancellable=False, percentage=0))

    def _create(self) -> str | None:
        """A new token registered with `window/workDoneProgress/create`, or None."""
        loop = self.ls.loop
        if loop is None:
            return None
        token = f"slm-index-{next(_tokens)}"
        create = self.ls.work_done_progress.create_async(token)
        try:
            asyncio.run_coroutine_threadsafe(create, loop).result(timeout=5)
        except Exception as exc:  # the client refused or is gone: status only
            log.warning("cannot create a progress token: %s", exc)
            return None
        return token

    def _send(self, value: Any) -> None:
        """One `$/progress` notification, if there is a token."""
        if self.token is None:
            return
        method = {types.WorkDoneProgressBegin: "begin", types.WorkDoneProgressReport: "report",
                  types.WorkDoneProgressEnd: "end"}[type(value)]
        self.ls.call_soon(getattr(self.ls.work_done_progress, method), self.token, value)

    def __call__(self, event: IndexProgress) -> None:
        """Report a build event (throttled); pause first while completions run."""
        self.ls.yield_to_completions()
        now = time.monotonic()
        if event.phase not in ("scanning", "indexing") or now - self.last < REPORT_EVERY_S:
            return
        self.last = now
        total = max(event.files_total, 1)
        self._send(types.WorkDoneProgressReport(
            message=f"{event.files_done}/{event.files_total} files, {event.chunks} chunks",
            percentage=min(100, event.files_done * 100 // total)))

    def end(self, message: str) -> None:
        """Close the progress and put the model's state back in the status bar."""
        self._send(types.WorkDoneProgressEnd(message=message))
        self.ls.status(*_model_status(self.ls))


def _lower_priority() -> None:
    """Give the calling thread a lower CPU priority (Linux threads only; elsewhere a no-op)."""
    try:
        tid = threading.get_native_id()
        current = os.getpriority(os.PRIO_PROCESS, tid)
        if current < BACKGROUND_NICE:
            os.setpriority(os.PRIO_PROCESS, tid, BACKGROUND_NICE)
    except (AttributeError, OSError):
        pass


def _supports_progress(ls: SlmServer) -> bool:
    """True if the client accepts server-created progress tokens."""
    window = ls.client_capabilities.window
    return bool(window is not None and window.work_done_progress)


def _model_status(ls: SlmServer) -> tuple[str, str]:
    """The model's state and message, as the status bar showed it before indexing."""
    state = ls.host.state
    if state == "ready":
        backend = ls.host.backend()
        return state, f"model {backend.name} ready" if backend else "model ready"
    if state == "error":
        try:
            ls.host.engine(timeout=0)
        except BackendError as exc:
            return state, str(exc)
    return state, "loading the model" if state == "loading" else state


class IndexFeature:
    """Owns the workspace's `RepoIndex`, its watcher and its build thread.

    Registered as ``server.extensions["index"]``: other features read the index
    through its `files()` and `search()`, which are empty until it is loaded.
    """

    def __init__(self, server: SlmServer,
                 make_index: Callable[[Path, Path, int], RepoIndex] | None = None) -> None:
        """Idle until `on_initialized`; the retriever returns nothing until the index loads.

        ``make_index(root, cache_dir, max_file_kb)`` opens an index (tests pass a light embedder).
        """
        self.ls = server
        self.make_index = make_index or _open_index
        self.settings: IndexSettings = server.settings.index
        self.retriever = IndexRetriever(self._count_tokens,
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

    # ----- lifecycle ---------------------------------------------------------------------

    def building(self) -> bool:
        """True while an index build runs."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def on_initialized(self) -> None:
        """Start indexing the workspace root (called by the lifecycle feature)."""
        self._initialized = True
        self.on_settings(self.ls.settings)

    def on_settings(self, settings: Settings) -> None:
        """Follow `slm.index` changes: start, stop, or reopen with a new size limit."""
        old, new = self.settings, settings.index
        self.settings = new
        self.retriever.budget_ms = new.retrieval_budget_ms
        if not self._initialized:
            return
        running = self.index is not None
        if running and (not new.enabled or new.max_file_kb != old.max_file_kb):
            threading.Thread(target=self._restart, name="slm-index-restart", daemon=True).start()
        elif new.enabled and not running:
            self.start()

    def _restart(self) -> None:
        """Close the index (waiting for its build to stop), then reopen it if enabled."""
        self.stop()
        if self._initialized and self.settings.enabled:
            self.start()

    def on_shutdown(self) -> None:
        """Stop the build and the watcher and save the index."""
        self._initialized = False
        self.stop()

    def start(self) -> None:
        """Open the index of the root and build it in the background."""
        root = self.ls.root
        if not root or not Path(root).is_dir():
            log.info("no workspace folder: the repository index is off")
            return
        index = self.make_index(Path(root), index_dir(Path(root)), self.settings.max_file_kb)
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
        progress: _Progress | None = None
        message = "indexing stopped"
        _lower_priority()
        self.ls.yield_to_completions(cancel=cancel)
        try:
            progress = _Progress(self.ls, "Indexing the repository")
            if first:
                self._load(index)
            message = self._run(index, progress, cancel)
        except Exception as exc:  # noqa: BLE001 - a broken index must not take the server down
            log.warning("indexing %s failed: %s", index.root, exc, exc_info=True)
            self._warn(f"the repository index failed ({exc}); it will be rebuilt")
            message = "indexing failed"
            if not cancel.is_set() and self.index is index:
                message = self._rebuild_fresh(index, progress, cancel)
        finally:
            self.loaded.set()
            trim()  # the embedding batches' buffers, freed now
            if progress is not None:
                progress.end(message)

    def _load(self, index: RepoIndex) -> None:
        """Read the saved index, start the watcher, and let completions use it."""
        existed = persist.exists(index.cache_dir)
        if not index.load() and existed:
            self._warn("the saved repository index was unusable; rebuilding it")
        self._attach(index)

    def _attach(self, index: RepoIndex) -> None:
        """Make `index` the one searched, watched and updated."""
        with self._lock:
            if self.index is not index:  # stopped (or replaced) meanwhile
                return
            if self.watcher is None:
                self.watcher = RepoWatcher(index.root, self._on_disk_changes, walker=index.walker)
                self.watcher.start()
        self.retriever.index = index
        self.loaded.set()

    def _run(self, index: RepoIndex, progress: _Progress | None, cancel: threading.Event) -> str:
        """One build; returns the summary shown at the end of the progress."""
        try:
            stats = index.build(progress=progress, cancel=cancel)
        except EmbedderUnavailable as exc:
            self._warn(f"repository context is off: {exc}")
            return "embedding model unavailable"
        if stats.cancelled:
            return "indexing cancelled"
        self.ready.set()
        self.retriever.invalidate()
        log.info("indexed %s: %d files, %d chunks (%d unchanged) in %.1fs", index.root,
                 stats.files, stats.chunks, stats.reused, stats.seconds)
        return f"{stats.files} files, {stats.chunks} chunks"

    def _rebuild_fresh(self, broken: RepoIndex, progress: _Progress | None,
                       cancel: threading.Event) -> str:
        """Delete the saved index and build a new one from scratch (once)."""
        shutil.rmtree(broken.cache_dir, ignore_errors=True)
        fresh = RepoIndex(broken.root, broken.cache_dir, embedder=broken.embedder,
                          max_file_kb=self.settings.max_file_kb, limits=broken.limits)
        fresh.load()
        with self._lock:
            if self.index is not broken:
                return "indexing stopped"
            self.index = fresh
        self._attach(fresh)
        try:
            return self._run(fresh, progress, cancel)
        except Exception as exc:  # noqa: BLE001 - give up quietly after the retry
            log.warning("rebuilding the index of %s failed: %s", fresh.root, exc, exc_info=True)
            return "indexing failed"

    def _warn(self, message: str) -> None:
        """Log a warning; the first one is also shown to the user."""
        log.warning("%s", message)
        if not self._warned:
            self._warned = True
            self.ls.show(message, types.MessageType.Warning)

    # ----- live updates ------------------------------------------------------------------

    def _on_disk_changes(self, changed: list[str], deleted: list[str]) -> None:
        """The watcher's callback: re-read changed files, forget deleted ones."""
        index = self.index
        if index is not None:
            _lower_priority()
            index.apply_changes(changed, deleted)
            log.debug("index updated from disk: %d changed, %d deleted", len(changed), len(deleted))

    def schedule(self, uri: str, delay: float) -> None:
        """Re-index a document's editor text ``delay`` seconds from now (restarting the wait)."""
        if self.index is None or not uri.startswith("file:"):
            return
        timer = threading.Timer(delay, self._update_document, args=(uri,))
        timer.daemon = True
        with self._lock:
            old = self._timers.pop(uri, None)
            self._timers[uri] = timer
        if old is not None:
            old.cancel()
        timer.start()

    def _update_document(self, uri: str) -> None:
        """Index an open document's unsaved text, or a closed one's file on disk."""
        with self._lock:
            self._timers.pop(uri, None)
        index, path = self.index, to_fs_path(uri)
        if index is None or path is None or not self.loaded.is_set():
            return
        _lower_priority()
        start = time.perf_counter()
        try:
            doc = self.ls.workspace.text_documents.get(uri)
            if doc is not None:
                index.update_file(path, doc.source)
            else:
                index.apply_changes([path], [])
        except Exception as exc:  # noqa: BLE001 - keep serving; the watcher catches up
            log.warning("cannot index %s: %s", path, exc)
            return
        log.debug("re-indexed %s in %.0f ms", path, (time.perf_counter() - start) * 1000)

    # ----- search ------------------------------------------------------------------------

    def search_json(self, query: str, k: int) -> dict[str, Any]:
        """The `slm-lsp search --json` answer for ``query`` (blocking)."""
        index = self.index
        if index is None:
            raise JsonRpcException("slm-lsp: the repository index is off", REQUEST_FAILED)
        self.loaded.wait(60)
        try:
            results = index.search(query, k=k)
        except EmbedderUnavailable as exc:
            raise JsonRpcException(f"slm-lsp: {exc}", REQUEST_FAILED) from exc
        rows = [{"path": r.chunk.path, "start_line": r.chunk.start_line,
                 "end_line": r.chunk.end_line, "score": round(r.score, 6),
                 "symbol": r.chunk.symbol}
                for r in results if not is_secret_path(r.chunk.path)]
        return {"results": rows}

    # RepoIndex's read API for other features (`server.extensions["index"]`): safe to call
    # at any time, empty until the index is loaded.

    def files(self) -> list[str]:
        """Root-relative paths of the indexed files ([] while there is no loaded index)."""
        index = self.retriever.index
        return index.files() if index is not None else []

    def search(self, query: str, k: int = 8, exclude_paths: Iterable[str] = (),
               budget_ms: float | None = None) -> list[SearchResult]:
        """`RepoIndex.search` on the loaded index, without secrets ([] while there is none)."""
        index = self.retriever.index
        if index is None:
            return []
        results = index.search(query, k=k, exclude_paths=exclude_paths, budget_ms=budget_ms)
        return [r for r in results if not is_secret_path(r.chunk.path)]

    def _count_tokens(self, text: str) -> int:
        """Tokens of ``text`` for the loaded model (about four characters each without one)."""
        backend = self.ls.host.backend()
        return backend.count_tokens(text) if backend is not None else len(text) // 4 + 1


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


def _search_args(args: tuple[Any, ...]) -> tuple[str, int]:
    """(query, k) from `[query]`, `[query, k]` or `[{"query": ..., "k": ...}]`."""
    first = args[0] if args else None
    k: Any = args[1] if len(args) > 1 else 8
    if isinstance(first, dict):
        k = first.get("k", k)
        first = first.get("query")
    if not isinstance(first, str) or not first.strip():
        raise JsonRpcInvalidParams("slm-lsp: slm.search needs a query string")
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 100:
        raise JsonRpcInvalidParams("slm-lsp: slm.search's k must be an integer from 1 to 100")
    return first, k


def register(server: SlmServer) -> None:
    """Index state, retriever, document handlers and the slm.search/slm.reindex commands."""
    feature = IndexFeature(server)
    server.extensions["index"] = feature
    server.settings_hooks.append(feature.on_settings)
    server.host.set_retriever(feature.retriever)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: SlmServer, params: types.DidChangeTextDocumentParams) -> None:
        """Re-index the document after a pause in typing."""
        feature.schedule(params.text_document.uri, EDIT_DEBOUNCE_S)

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls: SlmServer, params: types.DidSaveTextDocumentParams) -> None:
        """Re-index the saved document soon."""
        feature.schedule(params.text_document.uri, SAVE_DEBOUNCE_S)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: SlmServer, params: types.DidCloseTextDocumentParams) -> None:
        """Index the closed document's file as it is on disk (its unsaved edits are gone)."""
        feature.schedule(params.text_document.uri, SAVE_DEBOUNCE_S)

    @server.command("slm.search")
    async def search(ls: SlmServer, *args: Any) -> dict[str, Any]:
        """Returns `{"results": [{path, start_line, end_line, score, symbol}]}`."""
        query, k = _search_args(args)
        return await asyncio.to_thread(feature.search_json, query, k)

    @server.command("slm.reindex")
    def reindex(ls: SlmServer, *args: Any) -> dict[str, Any]:
        """Returns `{"started": bool}` at once; the build reports `$/progress`."""
        if feature.index is None:
            raise JsonRpcException("slm-lsp: the repository index is off", REQUEST_FAILED)
        return {"started": feature.reindex()}
