"""llama.cpp itself: imported once with its logging tamed, its threads, its build line.

A llama.cpp built with ``GGML_BACKEND_DL`` and ``GGML_CPU_ALL_VARIANTS`` (the Makefile's
build) ships its CPU kernels as one module per CPU generation
(``libggml-cpu-<variant>.so`` beside ``libllama``); ggml scores each against what the CPU
reports and loads the best. llama.cpp looks for them next to the program, which for
Python is the interpreter's folder, so ``init_llama`` points it at the package's own.
"""

from __future__ import annotations

import _ctypes
import ctypes
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
            _load_cpu_variants(Path(llama_cpp.__file__).parent / "lib")
            llama_cpp.llama_backend_init()
            _backend_ready = True
    return llama_cpp


def _variant_modules(lib_dir: Path) -> list[Path]:
    return sorted(p for p in lib_dir.glob("*ggml-cpu-*") if p.suffix in (".so", ".dylib", ".dll"))


AVOIDED_VARIANTS = ("sapphirerapids",)
"""CPU variants never loaded: the AMX kernels. Some virtual machines report AMX in cpuid
and then fault on its first instruction (seen here: 'Illegal instruction' in the first
matrix multiplication); AMX only exists on server CPUs, which can serve a team through an
inference server instead."""


def _load_cpu_variants(lib_dir: Path) -> None:
    """Registers the best CPU variant module of a build that has several (none: no-op).

    Each module scores itself against the CPU (``ggml_backend_score``: 0 when it needs
    an instruction the CPU lacks); the highest score wins, as in ggml's own
    ``ggml_backend_load_best``, minus ``AVOIDED_VARIANTS``.
    """
    modules = _variant_modules(lib_dir)
    if not modules:
        return
    # The name libllama links (its soname): a wheel holds copies, not symlinks, of
    # libggml.so, libggml.so.0 and libggml.so.0.x.y, and only that copy has the registry
    # libllama reads.
    names = [lib_dir / n for n in ("libggml.so.0", "libggml.0.dylib", "ggml.dll")
             if (lib_dir / n).exists()]
    if not names:
        raise BackendError(f"{lib_dir} has CPU kernel modules but no ggml library")
    best: tuple[int, Path] | None = None
    for module in modules:
        if any(avoid in module.name for avoid in AVOIDED_VARIANTS):
            continue
        try:
            candidate = ctypes.CDLL(str(module))
        except OSError:
            continue
        score_of = getattr(candidate, "ggml_backend_score", None)
        if score_of is not None:
            score_of.restype = ctypes.c_int
        score = int(score_of()) if score_of is not None else 0
        _ctypes.dlclose(candidate._handle)  # ggml_backend_load opens the chosen one again
        if score > 0 and (best is None or score > best[0]):
            best = (score, module)
    if best is None:
        raise BackendError(f"none of the CPU kernel modules in {lib_dir} runs on this CPU")
    ggml = ctypes.CDLL(str(names[0]))  # already loaded by libllama: this returns that copy
    ggml.ggml_backend_load.argtypes = [ctypes.c_char_p]
    ggml.ggml_backend_load.restype = ctypes.c_void_p
    if not ggml.ggml_backend_load(str(best[1]).encode()):
        raise BackendError(f"llama.cpp could not load its CPU kernels {best[1]}")
    log.info("llama.cpp CPU kernels: %s", ", ".join(cpu_variants()) or best[1].name)


def cpu_variants() -> list[str]:
    """The CPU variant modules loaded in this process (empty for a build without them)."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:  # not Linux
        return []
    found = {Path(line.split()[-1]).name for line in maps.splitlines() if "ggml-cpu-" in line}
    return sorted(name.split("ggml-cpu-", 1)[1].split(".")[0] for name in found)


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
