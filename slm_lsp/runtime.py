"""Owns the model and the completion engine for a running server.

Loads the model in a background thread, reports its state through a callback,
reloads it only when the model's own settings change, and never raises into
the caller: a missing or broken model becomes an ``error`` state with a message
the user can act on, and completion requests get that message as their error.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace

from .backends.base import BackendError, ModelBackend
from .engine import CompletionEngine, Retriever
from .settings import BackendSettings, ModelSettings, Settings

log = logging.getLogger(__name__)

StateListener = Callable[[str, str], None]
"""Called with (state, message); state is loading, ready, error, disabled or warning
(the model works, but not as configured: the on-prem server was refused or failed)."""

BackendFactory = Callable[[ModelSettings], ModelBackend]


def load_llama(settings: ModelSettings) -> ModelBackend:
    """The default backend: the configured GGUF in-process."""
    from .backends.llama import LlamaBackend
    from .models import ModelError, resolve_model_path

    try:
        path = resolve_model_path(settings.name, settings.path)
    except ModelError as exc:
        raise BackendError(str(exc)) from exc
    return LlamaBackend(
        path, n_ctx=settings.context_size, n_batch=settings.batch_size,
        n_threads=settings.threads, splice=settings.kv_splice, snapshots=settings.kv_snapshots,
    )


def with_large(settings: BackendSettings, local: ModelBackend,
               notify: Callable[[str, str], None],
               load: Callable[[str], ModelBackend] | None = None) -> ModelBackend:
    """``local`` alone, or a ``Router`` between it and a large model: the configured
    on-prem server (with ``local`` behind it), else the local ``large_model`` (``load``
    loads a known model by name). A large model that cannot be used is reported
    (``notify("refused", ...)``) and ``local`` serves everything."""
    from .backends.router import Router

    large = with_server(settings, local, notify)
    if large is None and settings.large_model and load is not None:
        try:
            large = load(settings.large_model)
        except BackendError as exc:
            log.warning("large model not used: %s", exc)
            notify("refused", f"slm.backend.largeModel {settings.large_model!r} is not used: {exc}")
    if large is None:
        return local
    return Router(local, large, keystrokes_small=settings.keystrokes == "local",
                  escalate_below=settings.escalate_below, notify=notify)


def with_server(settings: BackendSettings, local: ModelBackend,
                notify: Callable[[str, str], None]) -> ModelBackend | None:
    """The configured on-prem server with ``local`` behind it, or None.

    A URL whose host is not allowed is refused here, before any name lookup or
    connection; the user hears why (``notify("refused", ...)``) and gets None.
    """
    if settings.kind != "openai":
        return None
    from .backends.fallback import Breaker, FallbackBackend
    from .backends.hosts import check_url
    from .backends.openai import OpenAIBackend

    try:
        if not settings.url:
            raise BackendError("slm.backend.kind is openai but slm.backend.url is empty; "
                               "completions use the local model")
        endpoint = check_url(settings.url)
    except BackendError as exc:
        log.warning("on-prem server not used: %s", exc)
        notify("refused", str(exc))
        return None

    def remote() -> OpenAIBackend:
        return OpenAIBackend(endpoint, settings.model, settings.fim,
                             connect_timeout_s=settings.connect_timeout_ms / 1000,
                             read_timeout_s=settings.read_timeout_ms / 1000)

    return FallbackBackend(remote, local, Breaker(retry_s=settings.retry_after_s), notify)


@dataclass
class _Loaded:
    settings: ModelSettings
    backend: ModelBackend
    engine: CompletionEngine


class ModelHost:
    """The current backend and engine, (re)loaded off the caller's thread."""

    def __init__(
        self,
        on_state: StateListener,
        factory: BackendFactory = load_llama,
        retriever: Retriever | None = None,
        repo_name: str | None = None,
    ) -> None:
        self._on_state = on_state
        self._factory = factory
        self._retriever = retriever
        self.repo_name = repo_name
        """Shown to the model with its repository token; set before the first load."""
        self._lock = threading.Lock()
        self._loaded: _Loaded | None = None
        self._error: str | None = None
        self._ready = threading.Event()
        self._generation = 0
        self._target: tuple[ModelSettings, BackendSettings] | None = None
        self._settings = Settings()
        self.state = "loading"
        self.message = "loading the model"

    def _set_state(self, state: str, message: str) -> None:
        self.state = state
        self.message = message
        try:
            self._on_state(state, message)
        except Exception:  # a broken listener must not break loading
            log.exception("state listener failed")

    def configure(self, settings: Settings, *, force: bool = False) -> threading.Thread | None:
        """Apply settings; start a (re)load only if the model section changed (or ``force``)."""
        with self._lock:
            self._settings = settings
            if not force and self._target == (settings.model, settings.backend):
                if self._loaded is not None:
                    self._apply_engine_settings(self._loaded, settings)
                return None
            self._target = (settings.model, settings.backend)
            self._generation += 1
            generation = self._generation
            self._ready.clear()
        thread = threading.Thread(
            target=self._load, args=(settings, generation), name="slm-model-load", daemon=True
        )
        thread.start()
        return thread

    def _apply_engine_settings(self, loaded: _Loaded, settings: Settings) -> None:
        loaded.engine.settings = settings.completion
        loaded.engine.context_tokens = settings.index.context_tokens if settings.index.enabled else 0
        loaded.engine.cache.clear()

    def _load(self, settings: Settings, generation: int) -> None:
        self._set_state("loading", "loading the model")
        try:
            backend = with_large(settings.backend, self._factory(settings.model),
                                 self._on_server, self._large_loader(settings.model))
            engine = CompletionEngine(
                backend, settings.completion, n_ctx=settings.model.context_size,
                retriever=self._retriever,
                context_tokens=settings.index.context_tokens if settings.index.enabled else 0,
                repo_name=self.repo_name,
            )
        except BackendError as exc:
            with self._lock:
                if generation != self._generation:
                    return
                self._error = str(exc)
                self._ready.set()
            log.error("model unavailable: %s", exc)
            self._set_state("error", str(exc))
            return
        except Exception as exc:  # an unexpected failure is still only this feature's failure
            log.exception("model failed to load")
            with self._lock:
                if generation != self._generation:
                    return
                self._error = f"the model failed to load: {exc}"
                self._ready.set()
            self._set_state("error", self._error)
            return
        with self._lock:
            if generation != self._generation:
                backend.close()
                return
            old, self._loaded, self._error = self._loaded, _Loaded(settings.model, backend, engine), None
            self._apply_engine_settings(self._loaded, self._settings)  # newer than at load start
            self._ready.set()
        if old is not None:
            old.backend.close()
        if not getattr(backend, "problem", None):
            self._set_state("ready", f"model {backend.name} ready")

    def _large_loader(self, model: ModelSettings) -> Callable[[str], ModelBackend]:
        """Loads a known model by name, as the large model beside ``model`` (no warm-ups,
        so no saved states)."""
        return lambda name: self._factory(replace(model, name=name, path="", kv_snapshots=0))

    def _on_server(self, change: str, message: str) -> None:
        """The on-prem server was refused, failed (the local model answers) or is back."""
        if change == "served":
            loaded = self._loaded
            name = loaded.backend.name if loaded is not None else "the model"
            self._set_state("ready", f"model {name} ready; {message}")
            return
        self._set_state("warning" if change in ("refused", "fallback") else "ready", message)

    @property
    def settled(self) -> bool:
        """False while a model is loading; True once it is ready or has failed."""
        return self._ready.is_set()

    def engine(self, timeout: float | None = None) -> CompletionEngine:
        """The ready engine; raises ``BackendError`` with the reason when there is none."""
        if not self._ready.wait(timeout):
            raise BackendError("the model is still loading")
        with self._lock:
            if self._loaded is None:
                raise BackendError(self._error or "no model is loaded")
            return self._loaded.engine

    def set_retriever(self, retriever: Retriever | None) -> None:
        """Repository context for completions (set by the index feature)."""
        with self._lock:
            self._retriever = retriever
            if self._loaded is not None:
                self._loaded.engine.retriever = retriever

    def backend(self) -> ModelBackend | None:
        """The loaded backend, if any (for `doctor` and tests)."""
        with self._lock:
            return self._loaded.backend if self._loaded else None

    def close(self) -> None:
        with self._lock:
            loaded, self._loaded = self._loaded, None
            self._generation += 1
        if loaded is not None:
            loaded.backend.close()
