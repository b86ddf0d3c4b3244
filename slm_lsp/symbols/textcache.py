"""A least-recently-used cache for functions of document texts, bounded by the text it keeps.

`functools.lru_cache` counts entries only, and an entry keeps its key: every keystroke makes
a new text, so a cache of 256 results of a 1 MB file holds 256 MB, and one call on a 50 MB
document keeps those 50 MB after the document is closed. Here the texts of the keys are
counted too: a call whose text is longer than the whole budget is computed and not kept,
and the oldest results are dropped while the kept texts exceed it.

Where an argument names the document (a path), older versions of a document can go as
soon as a newer one comes: an edited file's earlier texts are not asked for again, and
without that a session of typing filled every cache with them (a throwaway fill of the
symbol caches on jinja2: about 50 MiB resident, reached after some 800 keystrokes).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from functools import wraps
from typing import TypeVar

R = TypeVar("R")


def text_cache(maxsize: int, max_chars: int, *, versions: int = 0,
               document: int = -1) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """Cache at most ``maxsize`` results whose string arguments hold ``max_chars`` in all;
    with ``versions``, also at most that many per value of argument ``document`` (the
    most recent ones)."""
    def decorate(fn: Callable[..., R]) -> Callable[..., R]:
        entries: OrderedDict[tuple[Hashable, ...], tuple[R, int]] = OrderedDict()
        by_document: dict[Hashable, list[tuple[Hashable, ...]]] = {}
        kept = [0]
        lock = threading.Lock()

        def drop(key: tuple[Hashable, ...]) -> None:
            _, weight = entries.pop(key)
            kept[0] -= weight
            if versions:
                keys = by_document[key[document]]
                keys.remove(key)
                if not keys:
                    del by_document[key[document]]

        @wraps(fn)
        def cached(*args: Hashable) -> R:
            with lock:
                hit = entries.get(args)
                if hit is not None:
                    entries.move_to_end(args)
                    return hit[0]
            result = fn(*args)
            weight = sum(len(a) for a in args if isinstance(a, str))
            if weight > max_chars:
                return result
            with lock:
                if args not in entries:
                    entries[args] = (result, weight)
                    kept[0] += weight
                    if versions:
                        same = by_document.setdefault(args[document], [])
                        same.append(args)
                        while len(same) > versions:
                            drop(same[0])
                while entries and (len(entries) > maxsize or kept[0] > max_chars):
                    drop(next(iter(entries)))
            return result

        def cache_clear() -> None:
            with lock:
                entries.clear()
                by_document.clear()
                kept[0] = 0

        def cache_chars() -> int:
            return kept[0]

        setattr(cached, "cache_clear", cache_clear)  # noqa: B010 - the lru_cache interface
        setattr(cached, "cache_chars", cache_chars)  # noqa: B010
        return cached

    return decorate


