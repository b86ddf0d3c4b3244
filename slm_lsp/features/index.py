"""The repository index at the protocol edge: progress, document events, search commands.

The index's life cycle (build, watch, debounce, yielding to completions) is
`slm_lsp.workspace.WorkspaceIndex`; this module shows its builds as `$/progress`
and `slm/status`, feeds it the editor's document events, and serves the commands
`slm.search` (query, optional k; the same JSON as `slm-lsp search --json`) and
`slm.reindex` (starts a rebuild and returns at once).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams
from pygls.uris import to_fs_path

from indexer.embedder import EmbedderUnavailable
from indexer.index import IndexProgress, RepoIndex
from prompts.fim import ContextFile

from ..backends.base import BackendError
from ..context import CursorContext
from ..repo_context import DefinitionContext, RepoContext
from ..server import SlmServer
from ..settings import Settings
from ..symbols import resolver_for
from ..workspace import EDIT_DEBOUNCE_S, SAVE_DEBOUNCE_S, IndexOff, WorkspaceIndex
from ._common import REQUEST_FAILED, source_tree

log = logging.getLogger(__name__)

REPORT_EVERY_S = 0.5
"""At most this often a `$/progress` report is sent during a build."""
_tokens = itertools.count(1)


class _Progress:
    """`$/progress` (when the client allows it) and `slm/status` for one build."""

    def __init__(self, ls: SlmServer, title: str) -> None:
        """Create the client's progress token (blocking; call from a worker thread)."""
        self.ls = ls
        self.token = self._create() if _supports_progress(ls) else None
        self.last = 0.0
        self.phase = ""
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
        if method == "end":  # pygls 2.1 keeps every token it created otherwise
            self.ls.call_soon(self.ls.work_done_progress.tokens.pop, self.token, None)

    def __call__(self, event: IndexProgress) -> None:
        """Report a build event (throttled, but a change of phase always shows)."""
        now = time.monotonic()
        message = progress_message(event)
        if message is None or (event.phase == self.phase and now - self.last < REPORT_EVERY_S):
            return
        self.last = now
        self.phase = event.phase
        total = max(event.files_total, 1)
        self._send(types.WorkDoneProgressReport(
            message=message, percentage=min(100, event.files_done * 100 // total)))

    def end(self, message: str) -> None:
        """Close the progress and put the model's state back in the status bar."""
        self._send(types.WorkDoneProgressEnd(message=message))
        self.ls.status(*_model_status(self.ls))


def progress_message(event: IndexProgress) -> str | None:
    """What the editor shows for a build event (None: nothing worth a report)."""
    if event.phase == "loading":
        return "loading the embedding model"
    if event.phase == "scanning":
        return "finding the files to index"
    if event.phase == "embedding":
        return f"{event.files_done}/{event.files_total} files read, embedding their chunks"
    if event.phase == "indexing":
        return f"{event.files_done}/{event.files_total} files, {event.chunks} chunks"
    return None


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
    """The server's side of the index (an `IndexHost`): what the editor sees of it."""

    def __init__(self, server: SlmServer,
                 make_index: Callable[[Path, Path, int], RepoIndex] | None = None) -> None:
        self.ls = server
        self.workspace = WorkspaceIndex(self, server.settings, make_index)

    @property
    def root(self) -> str | None:
        """The workspace folder, once the editor named it."""
        return self.ls.root

    def build_started(self, title: str) -> _Progress:
        """Progress for one build (blocking; called from the build thread)."""
        return _Progress(self.ls, title)

    def warn(self, message: str) -> None:
        """Show a warning to the user."""
        self.ls.show(message, types.MessageType.Warning)

    def document_text(self, uri: str) -> str | None:
        """The editor's text of an open document, or None once it is closed."""
        doc = self.ls.workspace.text_documents.get(uri)
        return doc.source if doc is not None else None

    def yield_to_completions(self, max_wait: float = 30.0,
                             cancel: threading.Event | None = None) -> None:
        """Wait while completions run (index work gives them the cores)."""
        self.ls.yield_to_completions(max_wait, cancel=cancel)

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` for the loaded model (about four characters each without one)."""
        backend = self.ls.host.backend()
        return backend.count_tokens(text) if backend is not None else len(text) // 4 + 1

    def schedule(self, uri: str, delay: float) -> None:
        """Re-index a document ``delay`` seconds from now (restarting the wait)."""
        self.workspace.schedule(uri, to_fs_path(uri), delay)

    def search_json(self, query: str, k: int) -> dict[str, Any]:
        """The `slm.search` answer; a JSON-RPC error when there is no index or embedder."""
        try:
            return self.workspace.search_json(query, k)
        except (IndexOff, EmbedderUnavailable) as exc:
            raise JsonRpcException(f"slm-lsp: {exc}", REQUEST_FAILED) from exc


def context_mode(settings: Settings) -> str:
    """The repository context's mode: ``slm.index.context``, or off with the index."""
    return settings.index.context if settings.index.enabled else "off"


class _Definitions:
    """The definition context of the server's current workspace (made on first use: the
    root is known only after `initialize`)."""

    def __init__(self, ls: SlmServer, count_tokens: Callable[[str], int]) -> None:
        self.ls = ls
        self.count_tokens = count_tokens
        self._current: DefinitionContext | None = None

    def __call__(self, ctx: CursorContext, budget: int) -> tuple[tuple[ContextFile, ...], int]:
        tree = source_tree(self.ls)
        current = self._current
        if current is None or current.resolver.tree is not tree:
            current = self._current = DefinitionContext(resolver_for(tree), self.count_tokens)
        return current(ctx, budget)


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
    workspace = feature.workspace
    server.extensions["index"] = workspace
    server.settings_hooks.append(workspace.on_settings)
    context = RepoContext(_Definitions(server, feature.count_tokens), workspace.retriever,
                          context_mode(server.settings), feature.count_tokens)
    server.settings_hooks.append(lambda settings: setattr(context, "mode", context_mode(settings)))
    server.host.set_retriever(context)

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
        if workspace.index is None:
            raise JsonRpcException(f"slm-lsp: {workspace.off_reason()}", REQUEST_FAILED)
        return {"started": workspace.reindex()}
