"""Which tokens the model's KV cache holds, and how a new prompt reuses them.

``KVCache`` keeps the cache in step with the prompts of successive requests;
``plan`` aligns a new prompt with the cached one (the blocks worth moving), and
``deleted_before_cursor`` refuses a move that would carry states computed over
text the user has since deleted.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from prompts.fim import FimFamily

from .base import Cancelled
from .snapshots import Snapshot, SnapshotStore

log = logging.getLogger(__name__)


class Model(Protocol):
    """What the cache needs of the model whose cache it is (``LlamaBackend``)."""

    n_batch: int
    _c: Any  # the llama_cpp module
    _ctx: Any  # llama-cpp-python's context wrapper

    @property
    def fim(self) -> FimFamily | None: ...

    def memory(self) -> object: ...

    def decode(self, tokens: Sequence[int], start: int, seq: int = 0,
               all_logits: bool = False) -> None: ...

    def text_of(self, tokens: Sequence[int]) -> bytes: ...

    def _special_id(self, text: str) -> int | None: ...


class KVCache:
    """Which tokens sit in the model's KV cache (sequence 0, positions 0..n-1).

    ``sync`` makes the cache hold a new prompt while evaluating as little as
    possible. The common prefix is always kept. With ``splice`` on, any long run
    of tokens that the cache already holds is kept as well, wherever it now
    sits: the new prompt is aligned with the cached one (``plan``), the cells of
    each matching block are moved to their new positions with a RoPE position
    shift (``llama_memory_seq_add``), and only the tokens in between are
    evaluated. Typing before the suffix, moving the cursor to another line (the
    text between the old and the new cursor changes sides of the FIM suffix
    token) and a window that slides by a few lines all become cheap this way.

    llama.cpp only appends at the end of a sequence, so a gap that has kept
    blocks after it is evaluated in scratch sequence 1, which first receives
    the cells before the gap, and is then added to sequence 0. A moved block
    keeps the attention state it had when it was computed, except a short
    window at its start that is recomputed (``REFRESH``); the benchmark measures
    what the rest costs in accuracy.

    ``tokens`` may hold ``HOLE`` where no cell exists (a cancelled evaluation
    leaves the blocks after it in place, and the next ``sync`` can still use them).
    """

    MIN_SPLICE = 32
    """Shortest block worth moving rather than evaluating again."""
    REFRESH = 8
    """Tokens at the start of a moved block that are recomputed anyway: the cached
    states there still encode the text that came before them, and without this
    the model tends to predict the characters the user just typed (measured: the
    next token agreed with a full evaluation 1 time in 8 without, 8 in 8 with 4)."""
    HOLE = -1
    CANCEL_STEP = 128
    """Prompt tokens per decode call: how often a cancelled prompt evaluation looks up."""
    WARM_STEP = 64
    """The same for a warm-up, which a user's request interrupts: it waits for at
    most this many tokens (about 0.5 s; bench_decode's prompt evaluation shows 32
    would make a warm-up about 14% slower)."""

    def __init__(self, backend: Model, *, splice: bool,
                 snapshots: SnapshotStore | None = None) -> None:
        self.b = backend
        self.splice = splice
        self.snapshots = snapshots
        self.tokens: list[int] = []
        self.mark: int | None = None
        self.step = self.CANCEL_STEP

    def _rm(self, seq: int, p0: int, p1: int) -> None:
        self.b._c.llama_memory_seq_rm(self.b.memory(), seq, p0, p1)

    def _eval(self, tokens: Sequence[int], start: int, seq: int,
              cancel: threading.Event | None, done: list[int] | None = None) -> None:
        step = min(self.b.n_batch, self.step)
        for i in range(0, len(tokens), step):
            if cancel is not None and cancel.is_set():
                raise Cancelled()
            self.b.decode(tokens[i:i + step], start + i, seq)
            if done is not None:
                done[0] = i + len(tokens[i:i + step])

    def drop_from(self, pos: int) -> None:
        """Remove cells from ``pos`` on (rejected draft tokens; not tracked in ``tokens``)."""
        self._rm(0, pos, -1)

    def forget_after(self, n: int) -> None:
        """Drop generated tokens so the cache ends with the prompt again."""
        self._rm(0, n, -1)  # generated tokens are never recorded in ``tokens``
        del self.tokens[n:]

    def clear(self) -> None:
        self._rm(-1, -1, -1)
        self.tokens = []
        self.mark = None

    WINDOW = 32
    """Tokens on each side of the cursor marker recomputed after the cursor moved
    over cached text (see ``plan``)."""

    def sync(self, prompt: list[int], cancel: threading.Event | None = None,
             mark: int | None = None, forced: bytes = b"") -> int:
        """Make the cache hold ``prompt`` with fresh logits for its last token.

        ``mark`` is where the cursor marker sits in ``prompt`` (see ``plan``);
        ``forced`` is the text the generation must start with (token healing),
        which is typed text all the same (see ``deleted_before_cursor``).
        Returns how many prompt tokens were reused rather than evaluated.
        """
        n, blocks = self._layout(self.tokens, self.mark, prompt, mark, forced)
        if self.snapshots is not None and len(prompt) - _reused(n, blocks) >= self.SNAPSHOT_GAIN:
            if self._jump(prompt, mark, _reused(n, blocks), forced):
                n, blocks = self._layout(self.tokens, self.mark, prompt, mark, forced)
        self.mark = mark
        cached = self.tokens
        if blocks:
            return self._rebuild(prompt, n, blocks, cancel)
        self._rm(0, n, -1)
        self.tokens = cached[:n]
        done = [0]
        try:
            self._eval(prompt[n:], n, 0, cancel, done)
        except Cancelled:
            # Keep what was evaluated: the next prompt usually starts the same way.
            self.tokens = list(prompt[:n + done[0]])
            raise
        self.tokens = list(prompt)
        return n

    def _layout(self, cached: Sequence[int], cached_mark: int | None, prompt: list[int],
                mark: int | None, forced: bytes = b"") -> tuple[int, list[Block]]:
        """The common prefix of a cache holding ``cached`` and ``prompt``, and the
        blocks after it that can be moved rather than evaluated (none after a
        deletion before the cursor, see ``deleted_before_cursor``)."""
        n = 0
        limit = min(len(cached), len(prompt) - 1)  # the last token is always re-evaluated
        while n < limit and cached[n] == prompt[n]:
            n += 1
        marks = None if mark is None or cached_mark is None else (cached_mark, mark)
        blocks = plan(cached, prompt, n, self.MIN_SPLICE, self.REFRESH, marks=marks,
                      window=self.WINDOW) if self.splice else []
        fim = self.b.fim
        if blocks and fim is not None and fim.order == "psm" and deleted_before_cursor(
                cached, cached_mark, prompt, mark, n, forced, self.b.text_of,
                self.b._special_id(fim.middle)):
            log.debug("kv reuse: text before the cursor was deleted; %d blocks not moved",
                      len(blocks))
            blocks = []
        return n, blocks

    SNAPSHOT_MIN = 256
    """Fewest cached tokens worth saving when the cursor jumps away."""
    SNAPSHOT_GAIN = 32
    """Fewest tokens a saved state must spare over the cache to be read back: about
    0.3 s of evaluation, against 10-20 ms to read back a state of 1,900 tokens (the
    debug log gives the time) and a few to find the best of the saved ones."""
    WARM_SLACK = 128
    """A warm-up is skipped when the cache or a saved state leaves fewer than this many
    of its tokens to evaluate: redoing a region costs its whole prompt from the first
    changed token, a request in it only the tokens left."""

    def _jump(self, prompt: list[int], mark: int | None, reused: int,
              forced: bytes = b"") -> bool:
        """Much of ``prompt`` is new to the cache: read back a saved state that serves
        it better, if there is one. When most of it is new (a far jump), the cache's
        own state is saved first. True when the cache changed."""
        store = self.snapshots
        assert store is not None
        found = self._best_saved(store, prompt, mark, forced)
        if reused < len(prompt) // 2 and self.worth_saving():
            self._save(store)
        if found is None or found[1] < reused + self.SNAPSHOT_GAIN:
            return False
        snap, value = found
        started = time.perf_counter()
        data = store.read(snap)
        if data is None:
            return False
        self.clear()
        c = self.b._c
        buf = (ctypes.c_uint8 * len(data)).from_buffer(data)
        if not c.llama_state_seq_set_data(self.b._ctx.ctx, buf, len(data), 0):
            log.warning("llama.cpp could not restore a KV snapshot; evaluating the prompt")
            self.clear()
            return True
        self.tokens, self.mark = list(snap.tokens), snap.mark
        log.debug("kv snapshot restored in %.1f ms: %d of %d prompt tokens reusable (the cache "
                  "had %d)", (time.perf_counter() - started) * 1000, value, len(prompt), reused)
        return True

    def covered(self, prompt: list[int], mark: int | None) -> bool:
        """Whether the cache or a saved state already holds nearly all of ``prompt``
        (all but fewer than ``WARM_SLACK`` tokens)."""
        need = len(prompt) - self.WARM_SLACK
        if _reused(*self._layout(self.tokens, self.mark, prompt, mark)) > need:
            return True
        store = self.snapshots
        found = None if store is None else self._best_saved(store, prompt, mark)
        return found is not None and found[1] > need

    def _best_saved(self, store: SnapshotStore, prompt: list[int], mark: int | None,
                    forced: bytes = b"") -> tuple[Snapshot, int] | None:
        """The saved state that lets ``prompt`` reuse the most tokens, with that count."""
        return store.best(
            lambda snap: _reused(*self._layout(snap.tokens, snap.mark, prompt, mark, forced)))

    def worth_saving(self) -> bool:
        """Whether the cache holds enough evaluated tokens to be worth a saved state."""
        return sum(1 for tok in self.tokens if tok != self.HOLE) >= self.SNAPSHOT_MIN

    def keep(self) -> bool:
        """Save the cache's state for later prompts; False without a store."""
        if self.snapshots is None:
            return False
        self._save(self.snapshots)
        return True

    def _save(self, store: SnapshotStore) -> None:
        """Write the state of sequence 0 (the cached prompt) to ``store``."""
        c = self.b._c
        ctx = self.b._ctx.ctx
        size = c.llama_state_seq_get_size(ctx, 0)
        buf = (ctypes.c_uint8 * size)()
        n = c.llama_state_seq_get_data(ctx, buf, size, 0)
        if n:
            store.save(self.tokens, self.mark, memoryview(buf)[:n])

    def _rebuild(self, prompt: list[int], n: int, blocks: list[Block],
                 cancel: threading.Event | None) -> int:
        """Keep [0, n) and ``blocks`` (moved to their new places), evaluate the rest."""
        c = self.b._c
        mem = self.b.memory()
        end = n
        for old, _, size in blocks:  # drop every cell that is not kept
            if old > end:
                self._rm(0, end, old)
            end = old + size
        self._rm(0, end, -1)
        # Move the blocks. Left moves go first from the left, right moves then from
        # the right: a block's old range never holds another block's cells then.
        for old, new, size in blocks:
            if new < old:
                c.llama_memory_seq_add(mem, 0, old, old + size, new - old)
        for old, new, size in reversed(blocks):
            if new > old:
                c.llama_memory_seq_add(mem, 0, old, old + size, new - old)
        state = [self.HOLE] * len(prompt)  # which cells exist, as tokens are evaluated
        state[:n] = prompt[:n]
        gaps, start = [], n
        for _, new, size in blocks:
            state[new:new + size] = prompt[new:new + size]
            if new > start:
                gaps.append((start, new))
            start = new + size
        gaps.append((start, len(prompt)))  # blocks never include the last token
        log.debug("kv reuse: prefix %d, %d blocks moved, gaps %s", n, len(blocks),
                  [(s, e - s) for s, e in gaps])
        try:
            for s, e in gaps:
                self._fill(prompt, s, e, last=e == len(prompt), cancel=cancel, state=state)
        except BaseException:  # cancelled or failed: record which cells exist now
            self.tokens = state
            raise
        self.tokens = list(prompt)
        return _reused(n, blocks)

    def _fill(self, prompt: list[int], s: int, e: int, *, last: bool,
              cancel: threading.Event | None, state: list[int]) -> None:
        """Evaluate prompt[s:e] in sequence 0, where later cells may already sit."""
        done = [0]
        if last:  # nothing after it: append directly
            try:
                self._eval(prompt[s:e], s, 0, cancel, done)
            finally:
                state[s:s + done[0]] = prompt[s:s + done[0]]
            return
        c = self.b._c
        mem = self.b.memory()
        self._rm(1, -1, -1)
        c.llama_memory_seq_cp(mem, 0, 1, 0, s)
        try:
            self._eval(prompt[s:e], s, 1, cancel, done)
        finally:
            c.llama_memory_seq_cp(mem, 1, 0, s, s + done[0])
            self._rm(1, -1, -1)
            state[s:s + done[0]] = prompt[s:s + done[0]]


Block = tuple[int, int, int]
"""A run of cached tokens to keep: (position in the cache, position in the prompt, length)."""


def deleted_before_cursor(cached: Sequence[int], cached_mark: int | None,
                          prompt: Sequence[int], mark: int | None, n: int, forced: bytes,
                          text: Callable[[Sequence[int]], bytes], middle: int | None) -> bool:
    """Whether text that stood before the cursor in the cached prompt, after the
    common prefix ``n``, is no longer in the document (prefix/suffix/middle order).

    Every cached cell after such text was computed while reading it: moved into
    the new prompt, those cells still tell the model the deleted text is there.
    On the benchmark, where a line's rest-of-line task (cursor inside the line)
    comes right before its whole-line task (the line emptied), the whole-line
    answer left out the words deleted in between (`Markup(rv)` for
    `return Markup(rv)`, jinja2/runtime.py:375).

    The new prompt's text from ``n`` on is the document from there: its prefix
    part, the healed text after the middle token and ``forced``, then the suffix
    part. The cached text must reappear in it as it was, or with text inserted
    somewhere before the new cursor (typing, a line typed above): a cursor move
    keeps it whole, a deletion or a replacement does not.
    """
    if cached_mark is None or mark is None or not n <= cached_mark or not n <= mark:
        return False
    gone = text(cached[n:cached_mark])
    if not gone.strip():
        return False
    end = len(prompt)
    if middle is not None:
        end = next((i for i in range(len(prompt) - 1, mark, -1) if prompt[i] == middle), end)
    before = text(prompt[n:mark]) + text(prompt[end + 1:]) + forced
    doc = before + text(prompt[mark + 1:end])
    if doc.startswith(gone):
        return False
    same = len(os.path.commonprefix([gone, doc]))
    resumes = doc.find(gone[same:], same)
    return resumes < 0 or resumes > len(before)


def _reused(n: int, blocks: Sequence[Block]) -> int:
    """Prompt tokens a layout keeps: the common prefix and the moved blocks."""
    return n + sum(size for _, _, size in blocks)


def plan(cached: Sequence[int], prompt: Sequence[int], n: int, min_size: int,
         refresh: int, *, marks: tuple[int, int] | None = None, window: int = 0,
         probe: int = 16) -> list[Block]:
    """Blocks of ``cached`` to move into ``prompt`` after the common prefix ``n``.

    A greedy left-to-right scan: every run of ``probe`` prompt tokens is looked
    up among the cached ones (after the previous block) and a hit is extended
    as far as both agree. Linear in the prompt length, so it costs a few
    milliseconds even when nothing matches.

    ``marks`` are the positions of the cursor marker (the FIM token between
    prefix and suffix) in the cache and in the prompt. When cached text moved
    across it (the cursor moved over that text), the ``window`` tokens on each
    side of the new marker are recomputed: the model reads them most, and
    their cached states were computed with the cursor elsewhere. Recomputing
    all the text the cursor moved over instead cost 0.3-0.5 s more per move
    (jinja2/compiler.py, moves of 15 lines) without answering more like a cold
    start (8 of 10 first 8 tokens the same, against 10 of 10 with the window).

    Blocks are in increasing order in both sequences, at least ``min_size``
    tokens long after dropping their first ``refresh`` tokens (recomputed), and
    never include the prompt's last token (its logits are needed).
    """
    end_c, end_p = len(cached), len(prompt) - 1
    if end_c - n < min_size + refresh or end_p - n < min_size + refresh:
        return []
    where: dict[tuple[int, ...], list[int]] = {}
    for j in range(n, end_c - probe + 1):
        where.setdefault(tuple(cached[j:j + probe]), []).append(j)
    runs: list[Block] = []
    i, floor = n, n
    while i + probe <= end_p:
        hits = where.get(tuple(prompt[i:i + probe]))
        j = next((h for h in hits if h >= floor), -1) if hits else -1
        if j < 0:
            i += 1
            continue
        size = probe
        while j + size < end_c and i + size < end_p and cached[j + size] == prompt[i + size]:
            size += 1
        if size - refresh >= min_size:
            runs.append((j, i, size))
            floor = j + size
        i += size
    if marks is not None:
        runs = _around_cursor(runs, marks, window)
    return [(old + refresh, new + refresh, size - refresh)
            for old, new, size in runs if size - refresh >= min_size]


def _around_cursor(runs: list[Block], marks: tuple[int, int], window: int) -> list[Block]:
    """``runs`` without the ``window`` tokens on each side of the new cursor marker,
    when some cached text moved across the marker (the cursor moved over it)."""
    mark_c, mark_p = marks
    crossed = any((old < mark_c) != (new < mark_p)
                  or (old + size - 1 < mark_c) != (new + size - 1 < mark_p)
                  for old, new, size in runs)
    if not crossed:
        return runs
    out: list[Block] = []
    for old, new, size in runs:
        # Cut [mark_p - window, mark_p + window) out of the run's prompt range.
        cut0 = min(size, max(0, mark_p - window - new))
        cut1 = min(size, max(0, mark_p + window - new))
        out += [(old, new, cut0), (old + cut1, new + cut1, size - cut1)]
    return [block for block in out if block[2] > 0]
