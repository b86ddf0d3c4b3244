"""Keep a long-running server's resident memory close to what it actually holds.

Embedding a repository allocates many short-lived buffers of one to a few tens of
megabytes (activations of the embedding model). With glibc's defaults those come from
the heap once the dynamic mmap threshold has risen past them, and the freed space
stays in the process: a server that had just indexed jinja2 kept about 150 MiB more
than one started on a ready index. Buffers from 1 MiB up are mapped separately
instead, so freeing them returns the memory to the system.

Smaller buffers come from glibc's arenas, one per thread that allocates (up to
eight per core), and a freed block in the middle of an arena stays resident too.
``trim`` gives those pages back; the server calls it when a burst of work ends
(an index build, a freed explanation context).
"""

from __future__ import annotations

import ctypes
import logging
import platform
import sys

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3
"""glibc's mallopt parameter number (malloc.h)."""
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
    libc = _glibc()
    if libc is None:
        return False
    try:
        ok = bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_FROM_BYTES))
    except AttributeError as exc:
        log.debug("mallopt unavailable: %s", exc)
        return False
    log.debug("allocations from %d bytes are mapped on their own: %s", MMAP_FROM_BYTES, ok)
    return ok
