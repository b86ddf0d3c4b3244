"""llama.cpp itself: imported once with its logging tamed, its threads, its build line."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from .base import BackendError

log = logging.getLogger(__name__)

_backend_ready = False
_backend_lock = threading.Lock()


def init_llama() -> object:
    """Import llama_cpp once, with its C logging routed to stderr at error level."""
    global _backend_ready
    try:
        import llama_cpp
        from llama_cpp import _logger
    except ImportError as exc:  # pragma: no cover - a broken install
        raise BackendError(f"llama-cpp-python is not installed: {exc}") from exc
    with _backend_lock:
        if not _backend_ready:
            _logger.set_verbose(log.isEnabledFor(logging.DEBUG))
            llama_cpp.llama_backend_init()
            _backend_ready = True
    return llama_cpp


def default_threads() -> int:
    """Physical cores are what matters for llama.cpp; we assume no SMT siblings."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def system_info() -> str:
    """llama.cpp's build and CPU feature line."""
    llama_cpp = init_llama()
    return bytes(llama_cpp.llama_print_system_info()).decode(errors="replace").strip()  # type: ignore[attr-defined]


def read_gguf_header(path: Path) -> None:
    """Refuse anything that is not a GGUF file before llama.cpp sees it."""
    try:
        with path.open("rb") as f:
            magic = f.read(4)
    except OSError as exc:
        raise BackendError(f"cannot read model file {path}: {exc}") from exc
    if magic != b"GGUF":
        raise BackendError(f"{path} is not a GGUF model file (bad magic {magic!r})")
