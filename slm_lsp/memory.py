"""Keep a long-running server's resident memory close to what it actually holds.

Embedding a repository allocates many short-lived buffers of one to a few tens of
megabytes (activations of the embedding model). With glibc's defaults those come from
the heap once the dynamic mmap threshold has risen past them, and the freed space
stays in the process: a server that had just indexed jinja2 kept about 150 MiB more
than one started on a ready index. Buffers from 1 MiB up are mapped separately
instead, so freeing them returns the memory to the system.

Smaller buffers come from glibc's arenas, one per thread that allocates (up to eight
per core), and a freed block in the middle of an arena stays resident too. ``trim``
gives free pages back; the server calls it when a burst of work ends (an index build, a
document's re-index, a freed explanation context) and, through `IdleTrimmer`, once
requests have stopped for a few seconds. Limiting the arenas to two did not lower the soak
benchmark's growth (bench/soak-arenas16.md), so glibc's default stands. `usage` reports
what the process holds (the `slm.memory` command).
"""

from __future__ import annotations

import ctypes
import logging
import platform
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3
"""glibc's mallopt parameter numbers (malloc.h)."""
MMAP_FROM_BYTES = 1 << 20


def _glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc, else None."""
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError as exc:
        log.debug("libc unavailable: %s", exc)
        return None


def trim() -> bool:
    """Return the free pages of every glibc arena to the system (``malloc_trim``);
    False where there is nothing to do or that is not glibc."""
    libc = _glibc()
    if libc is None:
        return False
    try:
        return bool(libc.malloc_trim(0))
    except AttributeError as exc:
        log.debug("malloc_trim unavailable: %s", exc)
        return False


def return_large_frees() -> bool:
    """Make glibc map allocations of at least 1 MiB on their own; False where that is
    not glibc (nothing changes there)."""
    return _mallopt(M_MMAP_THRESHOLD, MMAP_FROM_BYTES,
                    f"allocations from {MMAP_FROM_BYTES} bytes are mapped on their own")


def _mallopt(param: int, value: int, what: str) -> bool:
    """glibc's ``mallopt(param, value)``; False where that is not glibc or it refused."""
    libc = _glibc()
    if libc is None:
        return False
    try:
        ok = bool(libc.mallopt(param, value))
    except AttributeError as exc:
        log.debug("mallopt unavailable: %s", exc)
        return False
    log.debug("%s: %s", what, ok)
    return ok


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def heap() -> dict[str, Any]:
    """The C heap now, in MiB (glibc 2.33 and later; else empty): ``in_use`` (allocated
    blocks), ``free`` (freed blocks the arenas keep, with the free space at each arena's top
    that a trim would return: what is left after a trim is fragmentation) and ``mapped``
    (blocks mapped on their own)."""
    libc = _glibc()
    if libc is None:
        return {}
    try:
        mallinfo2 = libc.mallinfo2
    except AttributeError:
        return {}
    mallinfo2.restype = _MallInfo2
    info = mallinfo2()
    return {"in_use": round(info.uordblks / 2**20, 1), "free": round(info.fordblks / 2**20, 1),
            "mapped": round(info.hblkhd / 2**20, 1)}


def usage() -> dict[str, Any]:
    """This process's memory in MiB: resident (``rss``: ``anon`` plus mapped files, the
    model among them, ``file``) and the C ``heap`` (see `heap`); and the count of blocks
    Python's object allocator holds (``python_blocks``: objects that pile up show here).
    Linux only, else empty."""
    fields = {"VmRSS": "rss", "RssAnon": "anon", "RssFile": "file"}
    out: dict[str, Any] = {}
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                key, _, value = line.partition(":")
                if key in fields and value.split():
                    out[fields[key]] = round(int(value.split()[0]) / 1024, 1)
    except OSError:
        return {}
    return {**out, "heap": heap(), "python_blocks": sys.getallocatedblocks()}


IDLE_TRIM_S = 3.0
"""Seconds without a request after which the server trims the heap (once per burst)."""


class IdleTrimmer:
    """Trims the heap once the server has had no request for ``idle_s`` after some (each
    `touch`): the buffers of a burst of typing or hovering, freed in the middle of the
    arenas, stay resident otherwise (+74.5 MiB of free heap in an hour, bench/soak.md).
    A trim takes tens of milliseconds and holds the arenas meanwhile, so never while
    ``busy()``. One daemon thread, started by the first touch, which sleeps while nothing
    happens."""

    def __init__(self, idle_s: float = IDLE_TRIM_S, busy: Callable[[], bool] = lambda: False,
                 release: Callable[[], bool] = trim) -> None:
        self.idle_s = idle_s
        self.trims = 0
        """Trims done (for tests and logs)."""
        self._busy = busy
        self._release = release
        self._last = 0.0
        self._work = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def touch(self) -> None:
        """A request ended: trim once ``idle_s`` pass without another."""
        self._last = time.monotonic()
        self._work.set()
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="slm-idle-trim",
                                                daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            self._work.wait()
            while (wait := self._last + self.idle_s - time.monotonic()) > 0 or self._busy():
                time.sleep(max(wait, 0.25))
            self._work.clear()
            try:
                self._release()
            except Exception:  # noqa: BLE001 - a failed trim must not end the thread
                log.debug("trim failed", exc_info=True)
            self.trims += 1
