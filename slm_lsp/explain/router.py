"""Which backend explains: a dedicated model when configured, else a second context on
the completion model's weights, released when idle.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..backends.base import BackendError, ModelBackend
from ..memory import trim
from ..settings import ExplainSettings, ModelSettings

log = logging.getLogger(__name__)


EXPLAIN_CTX = 4096
"""Context size of the explanation model's own KV cache."""


def _file_identity(path: Path) -> str:
    try:
        return f"{path.name}:{path.stat().st_size}"
    except OSError:
        return path.name


class ModelRouter:
    """The backend that explains: a dedicated model when configured, else a second
    context on the completion model's weights (its KV cache stays untouched)."""

    def __init__(self, shared: Callable[[float], ModelBackend | None],
                 loader: Callable[[Path], ModelBackend] | None = None,
                 n_ctx: int = EXPLAIN_CTX, shared_path: Path | None = None) -> None:
        self._shared = shared
        self._shared_path = shared_path
        """The completion model's file, naming it in cache keys before it is loaded."""
        self._loader = loader or self._load_llama
        self.n_ctx = n_ctx
        self._lock = threading.Lock()
        self._path: Path | None = None
        self._problem: str | None = None
        self._dedicated: ModelBackend | None = None
        self._loading: threading.Event | None = None
        self._spawned: tuple[int, ModelBackend] | None = None
        self._threads = 0
        self.release_after_s = float(ExplainSettings.release_after_s)
        self._leases = 0
        self._timer: threading.Timer | None = None

    def _load_llama(self, path: Path) -> ModelBackend:
        from ..backends.llama import LlamaBackend

        return LlamaBackend(path, n_ctx=self.n_ctx, n_threads=self._threads)

    def configure(self, explain: ExplainSettings, model: ModelSettings) -> None:
        """Pick the explanation model; a changed choice drops the old one."""
        from ..models import ModelError, resolve_model_path

        path: Path | None = None
        problem: str | None = None
        if explain.model_path or explain.model_name:
            try:
                path = resolve_model_path(explain.model_name, explain.model_path)
            except ModelError as exc:
                problem = str(exc)
        with self._lock:
            self._threads = model.threads
            self.release_after_s = float(explain.release_after_s)
            if path == self._path and problem == self._problem:
                return
            old, self._dedicated, self._loading = self._dedicated, None, None
            self._path, self._problem = path, problem
        if old is not None:
            old.close()

    def identity(self) -> str:
        """Names the model that would answer (part of every cache key)."""
        if self._path is not None:
            return _file_identity(self._path)
        try:
            backend = self._shared(0)
        except BackendError:
            return "unloaded"
        path = getattr(backend, "path", None) if backend is not None else self._shared_path
        if isinstance(path, Path):
            return _file_identity(path)
        return backend.name if backend is not None else "unloaded"

    @contextmanager
    def lease(self, cancel: threading.Event | None = None,
              timeout: float = 120) -> Iterator[ModelBackend]:
        """The explanation backend for one use (see ``get``). A spawned context left
        unused for ``release_after_s`` afterwards is freed (``release_idle``)."""
        with self._lock:
            self._leases += 1
            self._stop_timer()
        try:
            yield self.get(cancel, timeout)
        finally:
            with self._lock:
                self._leases -= 1
                if self._leases == 0 and self._spawned is not None:
                    self._timer = threading.Timer(self.release_after_s, self.release_idle)
                    self._timer.daemon = True
                    self._timer.name = "slm-explain-release"
                    self._timer.start()

    def _stop_timer(self) -> None:
        """Cancel a pending release (called with ``_lock`` held)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def release_idle(self) -> bool:
        """Free the spawned context unless a lease holds it; True when one was freed.

        Its KV cache and buffers are ~75 MiB with the default model; creating it
        again costs a few milliseconds plus the explanation prompt it had cached.
        """
        with self._lock:
            if self._leases or self._spawned is None:
                return False
            spawned, self._spawned, self._timer = self._spawned[1], None, None
        spawned.close()
        trim()
        log.info("freed the idle explanation context")
        return True

    def get(self, cancel: threading.Event | None = None, timeout: float = 120) -> ModelBackend:
        """The explanation backend, loading it first if needed; BackendError if none.
        Callers that generate use ``lease`` so the context is not freed under them."""
        if self._problem:
            raise BackendError(f"explanation model: {self._problem}")
        if self._path is not None:
            return self._wait_dedicated(cancel, timeout)
        backend = self._shared(timeout)
        if backend is None:
            raise BackendError("the model is still loading")
        spawn = getattr(backend, "spawn", None)
        if spawn is None:
            return backend
        with self._lock:
            if self._spawned is None or self._spawned[0] != id(backend):
                if self._spawned is not None:
                    self._spawned[1].close()
                self._spawned = (id(backend), spawn(self.n_ctx))
            return self._spawned[1]

    def _wait_dedicated(self, cancel: threading.Event | None, timeout: float) -> ModelBackend:
        with self._lock:
            if self._loading is None:
                self._loading = threading.Event()
                threading.Thread(target=self._load, args=(self._path, self._loading),
                                 name="slm-explain-load", daemon=True).start()
            loading = self._loading
        deadline = time.monotonic() + timeout
        while not loading.wait(0.05):
            if (cancel is not None and cancel.is_set()) or time.monotonic() > deadline:
                raise BackendError("the explanation model is still loading")
        with self._lock:
            if self._dedicated is None:
                raise BackendError(f"explanation model: {self._problem or 'not loaded'}")
            return self._dedicated

    def _load(self, path: Path, done: threading.Event) -> None:
        """Background load of the dedicated model (kept only if still wanted)."""
        try:
            backend: ModelBackend | None = self._loader(path)
            problem = None
        except Exception as exc:  # any failure is this feature's, reported on use
            log.warning("explanation model %s failed to load: %s", path, exc)
            backend, problem = None, str(exc)
        with self._lock:
            if self._loading is done:
                self._dedicated, self._problem = backend, problem
                backend = None
        if backend is not None:
            backend.close()
        done.set()

    def close(self) -> None:
        """Free the dedicated model and the spawned context."""
        with self._lock:
            dedicated, spawned = self._dedicated, self._spawned
            self._dedicated, self._spawned, self._loading = None, None, None
            self._stop_timer()
        for backend in (dedicated, spawned[1] if spawned else None):
            if backend is not None:
                backend.close()
