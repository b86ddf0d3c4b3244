"""The language server object: state shared by the feature modules.

Feature handlers live in ``slm_lsp.features``, one module per LSP feature, and
receive this server as their first argument; ``slm_lsp.features.build_server``
wires them (this module never imports them). Everything here is glue: settings,
the model host, per-document request supersession, and thread-safe notifications.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams, JsonRpcInvalidRequest
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol

from . import __version__
from .memory import IdleTrimmer
from .runtime import BackendFactory, ModelHost, load_llama
from .settings import LOGGERS, Settings, parse_settings

log = logging.getLogger(__name__)

T = TypeVar("T")

BACKGROUND_PREFIX = "slm-explain:"
"""Request keys of background-priority work (explanations); all others are completions."""
WARMUP_KEY = "slm-warmup:"
"""Request key of the one cursor warm-up (features/prewarm.py); any request cancels it."""
QUIET_S = 0.5
"""Background work (indexing) resumes only once no completion has run for this long: a
user typing gets one request after another, and a step of background work begun in the
gap between two of them would run on into the next (bench/scale.md)."""


class _Unfit:
    """A request whose parameters do not fit its method's types (answered with an error)."""

    jsonrpc = "2.0"

    def __init__(self, msg_id: int | str, method: str, problem: str) -> None:
        self.id = msg_id
        self.method = method
        self.problem = problem


class _Futures(dict):  # type: ignore[type-arg]
    """pygls's pending futures by message id. Handlers finish in worker threads and remove
    theirs while `shutdown` walks the rest to cancel them: ``items`` is a copy, so that
    walk never sees the dictionary change size."""

    def items(self) -> Any:
        return list(super().items())


class SlmProtocol(LanguageServerProtocol):
    """pygls's protocol, with an answer for every well-formed request: one whose parameters
    do not fit its method gets an Invalid Params error (pygls drops it unanswered), and a
    request after `shutdown` gets an Invalid Request error (pygls ignores it). And without
    pygls 2.1's leak: it keeps the future of every notification (a keystroke's `didChange`)
    under a fresh id that nothing removes; here it goes when the notification is handled."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._request_futures = _Futures(self._request_futures)

    def _execute_handler(self, msg_id: Any, handler: Any, callback: Any,
                         args: tuple[Any, ...] | None = None,
                         kwargs: dict[str, Any] | None = None) -> None:
        super()._execute_handler(msg_id, handler, callback, args, kwargs)
        if callback == self._check_handler_result:  # a notification: its id is pygls's own
            future = self._request_futures.get(msg_id)
            if future is not None:
                future.add_done_callback(lambda _: self._request_futures.pop(msg_id, None))

    def structure_message(self, data: dict[str, Any]) -> Any:
        try:
            return super().structure_message(data)
        except JsonRpcException:
            msg_id, method = data.get("id"), data.get("method")
            if isinstance(msg_id, (int, str)) and not isinstance(msg_id, bool) and isinstance(method, str):
                return _Unfit(msg_id, method, "its parameters do not fit the protocol's types")
            raise

    def handle_message(self, message: Any) -> None:
        if isinstance(message, _Unfit):
            log.warning("refused %s request %r: %s", message.method, message.id, message.problem)
            self._send_response(message.id, error=JsonRpcInvalidParams(
                f"slm-lsp: {message.method}: {message.problem}").to_response_error())
            return
        if (self._shutdown and getattr(message, "method", None) not in (None, "exit")
                and getattr(message, "id", None) is not None):  # a request, not a notification
            self._send_response(message.id, error=JsonRpcInvalidRequest(
                "slm-lsp: the server is shutting down").to_response_error())
            return
        super().handle_message(message)


class SlmServer(LanguageServer):
    """slm-lsp's server state on top of pygls."""

    def __init__(self, factory: BackendFactory = load_llama) -> None:
        super().__init__(
            "slm-lsp", __version__, text_document_sync_kind=types.TextDocumentSyncKind.Incremental,
            protocol_cls=SlmProtocol,
        )
        self.settings = Settings()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.root: str | None = None
        self.host = ModelHost(self._on_model_state, factory=factory)
        self._inflight: dict[str, threading.Event] = {}
        self._inflight_lock = threading.Lock()
        self.settings_hooks: list[Callable[[Settings], None]] = []
        """Called after settings change (the index and explainer re-read theirs)."""
        self.extensions: dict[str, Any] = {}
        """Other features' state (the index, the explainer), by name."""
        self.last_request = time.monotonic()
        """When the last request (not a warm-up) started or ended."""
        self.last_completion = float("-inf")
        """When the last completion ended."""
        self.trimmer = IdleTrimmer(busy=self.busy)
        """Gives the heap's free pages back once requests have stopped for a while."""
        self.start_log_level = logging.getLogger("slm_lsp").level
        """The level set at start (`--log-level`), kept while the editor sends none."""

    # -- settings ---------------------------------------------------------------------

    def apply_settings(self, raw: Any, *, source: str) -> None:
        """Parse the ``slm`` section, warn about bad values, and apply what is valid."""
        settings, problems = parse_settings(raw)
        for problem in problems:
            log.warning("%s: %s", source, problem)
            self.show(problem, types.MessageType.Warning)
        sent = isinstance(raw, dict) and raw.get("logLevel") == settings.log_level
        for name in LOGGERS:
            logging.getLogger(name).setLevel(settings.log_level.upper() if sent
                                             else self.start_log_level)
        self.settings = settings
        self.host.configure(settings)
        for hook in self.settings_hooks:
            hook(settings)

    # -- messages ---------------------------------------------------------------------

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn`` on the event loop (protocol writes are not thread-safe)."""
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        try:
            if threading.current_thread() is threading.main_thread():
                fn(*args)
            else:
                loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop is shutting down
            pass

    def show(self, message: str, kind: types.MessageType = types.MessageType.Info) -> None:
        """`window/showMessage`, from any thread."""
        self.call_soon(
            self.window_show_message,
            types.ShowMessageParams(type=kind, message=f"slm-lsp: {message}"),
        )

    def notify(self, method: str, params: Any) -> None:
        """A custom notification to the client, from any thread."""
        self.call_soon(self.protocol.notify, method, params)

    def status(self, state: str, message: str) -> None:
        """The custom `slm/status` notification that editors show in a status bar."""
        self.notify("slm/status", {"state": state, "message": message})

    def _on_model_state(self, state: str, message: str) -> None:
        if state == "error":  # before the status: a client that sees the state has the message
            self.show(message, types.MessageType.Error)
        elif state == "warning":  # the model works, but not as configured (on-prem server)
            self.show(message, types.MessageType.Warning)
            state = "ready"
        self.status(state, message)

    # -- requests ---------------------------------------------------------------------

    def supersede(self, key: str) -> threading.Event:
        """A cancel flag for a new request on ``key``; the previous one's is set.

        Any other request also stops the cursor warm-up (a request from the user comes
        first); what the warm-up evaluated stays in the KV cache for that request.
        """
        event = threading.Event()
        with self._inflight_lock:
            stale = [self._inflight.get(key)]
            if key != WARMUP_KEY:
                stale.append(self._inflight.pop(WARMUP_KEY, None))
                self.last_request = time.monotonic()
            self._inflight[key] = event
        for old in stale:
            if old is not None:
                old.set()
        return event

    def request_running(self, key: str) -> bool:
        """True while work registered under ``key`` (a document URI for completions) runs."""
        with self._inflight_lock:
            return key in self._inflight

    def busy(self) -> bool:
        """True while any request, warm-up or background model work runs."""
        with self._inflight_lock:
            return bool(self._inflight)

    def completion_running(self) -> bool:
        """True while a completion is being computed."""
        with self._inflight_lock:
            return any(_is_completion(key) for key in self._inflight)

    def yield_to_completions(self, max_wait: float = 30.0, cancel: threading.Event | None = None) -> None:
        """Block a background thread while completions run and until none has run for
        `QUIET_S` (at most ``max_wait`` seconds in all, or until ``cancel`` is set).

        On a machine with few cores llama.cpp's threads slow down many times over
        when anything else competes for the CPU, so background work (indexing)
        steps aside while the user is typing and waiting for suggestions.
        """
        stop = cancel if cancel is not None else threading.Event()
        deadline = time.monotonic() + max_wait
        while (now := time.monotonic()) < deadline:
            if self.completion_running():
                wait = 0.05
            else:
                wait = self.last_completion + QUIET_S - now
                if wait <= 0:
                    return
            if stop.wait(min(wait, 0.05, deadline - now)):
                return

    def finished(self, key: str, event: threading.Event) -> None:
        """Forget ``event`` if it is still the latest for ``key``."""
        with self._inflight_lock:
            if self._inflight.get(key) is event:
                del self._inflight[key]
            if key != WARMUP_KEY:
                self.last_request = time.monotonic()
            if _is_completion(key):
                self.last_completion = time.monotonic()
        self.trimmer.touch()

    async def run_cancellable(
        self, key: str, fn: Callable[[threading.Event], T], timeout_ms: int | None = None
    ) -> T:
        """Run blocking ``fn(cancel)`` in a thread; `$/cancelRequest` or a newer request
        on the same key set ``cancel``, so generation stops at the next token.

        The timeout is soft: past it the caller gets ``SoftTimeout`` but the work
        goes on (it warms the model's cache and fills the result cache) until it
        ends or a newer request supersedes it.
        """
        cancel = self.supersede(key)
        work = asyncio.ensure_future(asyncio.to_thread(fn, cancel))
        work.add_done_callback(lambda _f: self.finished(key, cancel))
        try:
            if timeout_ms:
                return await asyncio.wait_for(asyncio.shield(work), timeout_ms / 1000)
            return await work
        except asyncio.TimeoutError as exc:
            work.add_done_callback(_consume_exception)
            raise SoftTimeout(work, cancel) from exc
        except asyncio.CancelledError:
            cancel.set()
            work.add_done_callback(_consume_exception)
            raise


class SoftTimeout(Exception):
    """A request took longer than its time budget; its work may still finish later.

    ``work`` is that work and ``cancel`` its cancel flag (set when a newer request
    superseded it), so a caller can act on a result that comes late.
    """

    def __init__(self, work: asyncio.Future[Any], cancel: threading.Event) -> None:
        super().__init__("soft timeout")
        self.work = work
        self.cancel = cancel

    def when_done(self, fn: Callable[[Any], None]) -> None:
        """Call ``fn(result)`` on the event loop if the work ends with a result and was
        not cancelled or superseded meanwhile."""
        cancel = self.cancel

        def done(future: asyncio.Future[Any]) -> None:
            if not future.cancelled() and future.exception() is None and not cancel.is_set():
                fn(future.result())

        self.work.add_done_callback(done)


def _is_completion(key: str) -> bool:
    """Whether ``key`` is a completion's (completions are keyed by their document's URI)."""
    return ":" in key and not key.startswith((BACKGROUND_PREFIX, WARMUP_KEY))


def _consume_exception(future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.debug("background work ended with %r", future.exception())
