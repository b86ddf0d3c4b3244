"""Keep a long-running server's resident memory close to what it actually holds.

Embedding a repository allocates many short-lived buffers of one to a few tens of
megabytes (activations of the embedding model). With glibc's defaults those come from
the heap once the dynamic mmap threshold has risen past them, and the freed space
stays in the process: a server that had just indexed jinja2 kept about 150 MiB more
than one started on a ready index. Buffers from 1 MiB up are mapped separately
instead, so freeing them returns the memory to the system.
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


def return_large_frees() -> bool:
    """Make glibc map allocations of at least 1 MiB on their own; False where that is
    not glibc (nothing changes there)."""
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        ok = bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_FROM_BYTES))
    except (OSError, AttributeError) as exc:
        log.debug("mallopt unavailable: %s", exc)
        return False
    log.debug("allocations from %d bytes are mapped on their own: %s", MMAP_FROM_BYTES, ok)
    return ok
