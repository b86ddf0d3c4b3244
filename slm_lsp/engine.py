"""The completion pipeline: cursor context in, one cleaned suggestion out.

No protocol types here: the LSP handlers convert at the edge. Blocking work
(the model) runs in the caller's worker thread; cancellation is cooperative
through a ``threading.Event`` checked at every generated token.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from indexer.secrets import redact
from prompts.fim import (
    ContextFile,
    Segment,
    build_fim_prompt,
    fit_prefix,
    fit_suffix,
    keep_suffix_end,
    prefix_align,
    suffix_end,
)

from .backends.base import BackendError, Cancelled, ModelBackend
from .context import CursorContext
from .postprocess import Shape, clean, decide_shape, stop_rule
from .settings import CompletionSettings

log = logging.getLogger(__name__)

Retriever = Callable[[CursorContext, int], Sequence[ContextFile]]
"""Given the cursor and a token budget, repository context for the prompt."""


@dataclass(frozen=True)
class WarmRegion:
    """Cursor lines that share the start of their prompt, and the text that covers them.

    Every cursor on lines ``first..last`` gets a prefix that starts on line
    ``anchor`` (``fit_prefix`` cuts there); lines ``anchor..end-1`` hold that
    prefix and the suffix of the region's last line. Evaluated once as an
    open-ended prompt and saved, the region serves a request anywhere in it with
    only the text around the cursor to evaluate.
    """

    anchor: int
    first: int
    last: int
    end: int


def nearest_first(regions: Sequence[WarmRegion], line: int) -> list[WarmRegion]:
    """``regions`` ordered by their distance from ``line`` (the one holding it first)."""
    return sorted(regions, key=lambda r: (max(r.first - line, line - r.last, 0), r.anchor))


def _blanks(line: str) -> str:
    """The leading blanks (spaces and tabs) of ``line``."""
    return line[:len(line) - len(line.lstrip(" \t"))]


SINGLE_LINE_TOKENS = 48
"""Most tokens generated for a one-line suggestion."""


def wants_a_line(ctx: CursorContext, shape: Shape) -> bool:
    """Whether an empty answer is a miss: a single-line suggestion asked for on a line
    that holds nothing but its indentation (an automatic request there comes from the
    user's typing, or the cursor resting where they are about to type)."""
    return not shape.multiline and not ctx.line_before.strip() and not ctx.line_after.strip()


def token_limit(settings: CompletionSettings, shape: Shape) -> int:
    """Most tokens to generate for a suggestion of ``shape``."""
    return settings.max_tokens if shape.multiline else min(settings.max_tokens, SINGLE_LINE_TOKENS)


@dataclass
class Suggestion:
    """One answer of the engine."""

    text: str
    source: str
    """model, cache (same position) or typed-along (the user typed into a shown suggestion)."""
    shape: Shape | None = None
    timings: dict[str, float] = field(default_factory=dict)
    n_prompt: int = 0
    n_reused: int = 0


@dataclass(frozen=True)
class _Entry:
    prefix: tuple[int, int]
    """Length and hash of the text before the cursor."""
    suffix: tuple[int, int]
    """Length and hash of the text after it."""
    text: str
    shape: Shape | None


def _fingerprint(text: str) -> tuple[int, int]:
    return len(text), hash(text)


class ResultCache:
    """Recent suggestions, which also serve a user typing along one of them.

    A hit needs the same text after the cursor and a prefix that is the cached
    prefix plus characters that match the start of the cached suggestion. Texts are
    compared by length and hash (64 bits): an entry keeps no copy of the document,
    which for 64 places in a 4 MB file would be 256 MB.
    """

    def __init__(self, size: int = 64) -> None:
        self._entries: OrderedDict[tuple[int, int, int, int], _Entry] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def put(self, prefix: str, suffix: str, text: str, shape: Shape | None) -> None:
        entry = _Entry(_fingerprint(prefix), _fingerprint(suffix), text, shape)
        key = entry.prefix + entry.suffix
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)

    def get(self, prefix: str, suffix: str) -> Suggestion | None:
        after = _fingerprint(suffix)
        with self._lock:
            hit = self._entries.get(_fingerprint(prefix) + after)
            if hit is not None:
                return Suggestion(hit.text, "cache", hit.shape)
            entries = [e for e in reversed(self._entries.values())
                       if e.suffix == after and e.prefix[0] < len(prefix)]
        for entry in entries:  # the texts are hashed outside the lock
            cut = entry.prefix[0]
            typed = prefix[cut:]
            if (entry.text.startswith(typed) and len(typed) < len(entry.text)
                    and _fingerprint(prefix[:cut]) == entry.prefix):
                return Suggestion(entry.text[len(typed):], "typed-along", entry.shape)
        return None

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_HEAL_TAIL = re.compile(r"(?:\r?\n[ \t]{0,200}|[ \t]{0,200})[A-Za-z0-9_]{0,48}\Z")
"""Anchored with ``\\Z``: ``$`` also matches before a final line break, which took the
last word of the line above for the healed text of a cursor at the start of a line."""


def heal_text(prefix: str) -> str:
    """The end of the text before the cursor that the model regenerates (token healing).

    That is the partly typed identifier plus the blanks before it, and when
    nothing but indentation precedes it on the line, the line break as well.
    Code tokenizers glue a space to the word after it and a line's indentation
    to its line break, so a prompt cut inside a word, after a space or after
    an indentation is a split the model never saw: it starts a new word, or
    indents once more (measured on the benchmark's whole-line tasks). Keeping
    the prompt fixed while a word is typed also keeps it cached.
    """
    match = _HEAL_TAIL.search(prefix[-256:])
    return match.group(0) if match else ""


class CompletionEngine:
    """Builds the prompt, runs the model, cleans the result."""

    def __init__(
        self,
        backend: ModelBackend,
        settings: CompletionSettings,
        *,
        n_ctx: int = 4096,
        retriever: Retriever | None = None,
        context_tokens: int = 0,
        repo_name: str | None = None,
    ) -> None:
        fim = backend.fim
        if fim is None:
            raise BackendError(
                f"{backend.name} has no fill-in-the-middle tokens, so it cannot complete code "
                "in place; configure a code model with FIM support (for example "
                "`slm-lsp model install`)"
            )
        self.backend = backend
        self.fim = fim
        self.settings = settings
        self.n_ctx = n_ctx
        self.retriever = retriever
        self.context_tokens = context_tokens
        self.repo_name = repo_name
        self.cache = ResultCache()
        self._suffix_ends: dict[str, int] = {}
        """Per document, the line where the last prompt's suffix ended (see keep_suffix_end)."""

    def _budgets(self) -> tuple[int, int, int]:
        """Prefix, suffix and context budgets that fit the context window."""
        s = self.settings
        room = self.n_ctx - s.max_tokens - 16  # 16 for the special tokens and path
        pre, suf, ctx = s.max_prefix_tokens, s.max_suffix_tokens, self.context_tokens
        total = pre + suf + ctx
        if total > room:
            scale = room / total
            pre, suf, ctx = int(pre * scale), int(suf * scale), int(ctx * scale)
        return pre, suf, ctx

    def warm_regions(self, text: str, line: int) -> list[WarmRegion]:
        """The regions of a document, the one holding ``line`` first, then by distance.

        Token counts are per line (a line's tokens barely depend on its neighbours),
        with the whole cursor line counted as prefix: a region may start one aligned
        step later than ``fit_prefix`` would for its last lines' cursors, and extends
        ``WARM_MARGIN`` tokens further than the suffix budget for that.
        """
        if not getattr(self.backend, "can_warm", False) or self.fim.order != "psm":
            return []
        lines = text.splitlines(keepends=True) or [""]
        count = self.backend.count_tokens
        total = [0]
        for piece in lines:
            total.append(total[-1] + count(piece))
        pre, suf, _ = self._budgets()
        align = prefix_align(pre)
        starts = [0]  # first cursor line of each anchor's band, by the per-line estimate
        anchor = 0
        for row in range(len(lines)):
            while total[row] + 1 - total[anchor] > pre and anchor + align <= row:
                anchor += align
                starts.append(row)
        anchors = [0] + [align * k for k in range(1, len(starts))]
        for k in range(1, len(starts)):  # settle each band's first line with the exact cut
            row = starts[k]
            floor = anchors[k - 1]  # near this boundary the cut is one of these two
            while row < len(lines) - 1 and self._anchor_at(lines, row, pre, floor) < anchors[k]:
                row += 1
            while row - 1 > starts[k - 1] and \
                    self._anchor_at(lines, row - 1, pre, floor) >= anchors[k]:
                row -= 1
            starts[k] = row
        regions = []
        for k, first in enumerate(starts):
            last = starts[k + 1] - 1 if k + 1 < len(starts) else len(lines) - 1
            if last >= first:
                regions.append(self._region_end(WarmRegion(anchors[k], first, last, last),
                                                last, total, suf))
        return nearest_first(regions, line)

    def _anchor_at(self, lines: list[str], row: int, pre: int, floor: int) -> int:
        """The line where ``fit_prefix`` starts the prefix of a cursor after ``row``'s
        indentation, or ``floor`` (an aligned line) if it would start there or earlier."""
        prefix = "".join(lines[floor:row]) + _blanks(lines[row])
        return row - fit_prefix(prefix, pre, self.backend.count_tokens).count("\n")

    WARM_MARGIN = 64

    @classmethod
    def _region_end(cls, region: WarmRegion, last: int, total: list[int], suf: int) -> WarmRegion:
        end = last + 1
        while end < len(total) - 1 and total[end] - total[last + 1] < suf + cls.WARM_MARGIN:
            end += 1
        return WarmRegion(region.anchor, region.first, last, end)

    def warm(self, ctx: CursorContext, region: WarmRegion,
             cancel: threading.Event | None = None) -> int:
        """Evaluate and save ``region`` of ``ctx``'s document (see ``WarmRegion``).

        Returns the tokens evaluated (0 when already saved); raises ``Cancelled``.
        The repository context is the one a cursor in the middle of the region gets.
        """
        warm = getattr(self.backend, "warm", None)
        if warm is None:
            raise BackendError(f"{self.backend.name} cannot warm regions")
        text = ctx.prefix + ctx.suffix
        lines = text.splitlines(keepends=True)
        middle = (region.first + region.last) // 2
        row = lines[middle] if middle < len(lines) else ""
        indent = _blanks(row)
        above = "".join(lines[:middle]) + indent  # the text before a cursor after the indent
        context: Sequence[ContextFile] = ()
        _, _, ctx_budget = self._budgets()
        if self.retriever is not None and ctx_budget > 0 and middle < len(lines):
            at = CursorContext(uri=ctx.uri, path=ctx.path, language=ctx.language, prefix=above,
                               suffix=text[len(above):], line=middle, character=len(indent),
                               version=ctx.version, band=region.anchor)
            try:
                context = self.retriever(at, ctx_budget)
            except Exception:
                log.exception("retrieval failed; warming without repository context")
        # The prompt of a cursor after the middle line's indentation, as ``complete``
        # builds it (token healing included), with the suffix running to the region's end.
        before = "".join(lines[region.anchor:middle]) + indent
        heal = heal_text(above) if self.settings.token_healing else ""
        prompt = self._prompt(before[:len(before) - len(heal)],
                              row[len(indent):] + "".join(lines[middle + 1:region.end]),
                              ctx.path, context, open_end=True)
        evaluated: int = warm(prompt, cancel)
        return evaluated

    def _prompt(self, prefix: str, suffix: str, path: str | None,
                context: Sequence[ContextFile], *, open_end: bool = False) -> list[Segment]:
        """The FIM prompt, with every secret in its text replaced (``indexer.secrets``)."""
        return build_fim_prompt(self.fim, redact(prefix), redact(suffix), path=path,
                                repo_name=self.repo_name, open_end=open_end,
                                context=[replace(c, text=redact(c.text)) for c in context])

    def _backend_for(self, ctx: CursorContext, shape: Shape) -> ModelBackend:
        """Where a request runs: a backend that routes (a small and a large model, see
        ``backends.router``) sends automatic single-line completions to its fast model."""
        route = getattr(self.backend, "route", None)
        if route is None:
            return self.backend
        kind = "keystroke" if not (ctx.invoked or shape.multiline) else "large"
        return route(kind)  # type: ignore[no-any-return]

    def complete(self, ctx: CursorContext, cancel: threading.Event | None = None) -> Suggestion:
        """The suggestion for ``ctx``; raises ``Cancelled`` when ``cancel`` is set."""
        t0 = time.perf_counter()
        hit = self.cache.get(ctx.prefix, ctx.suffix)
        if hit is not None:
            hit.timings["total_ms"] = (time.perf_counter() - t0) * 1000
            return hit
        if cancel is not None and cancel.is_set():
            raise Cancelled()
        shape = decide_shape(ctx, self.settings.max_lines)
        pre_budget, suf_budget, ctx_budget = self._budgets()
        count = self.backend.count_tokens
        heal = heal_text(ctx.prefix) if self.settings.token_healing else ""
        kept = ctx.prefix[: len(ctx.prefix) - len(heal)]
        prefix = fit_prefix(kept, pre_budget, count)
        suffix = fit_suffix(ctx.suffix, suf_budget, count, first_line=ctx.line)
        suffix = keep_suffix_end(ctx.suffix, suffix, suf_budget, count, first_line=ctx.line,
                                 previous_end=self._suffix_ends.get(ctx.uri))
        if len(self._suffix_ends) > 256:
            self._suffix_ends.clear()
        self._suffix_ends[ctx.uri] = suffix_end(suffix, ctx.line)
        t1 = time.perf_counter()
        context: Sequence[ContextFile] = ()
        if self.retriever is not None and ctx_budget > 0:
            try:
                band = kept.count("\n") - prefix.count("\n")  # the line the prompt text starts on
                context = self.retriever(replace(ctx, band=band), ctx_budget)
            except Exception:  # retrieval is an optional extra; never lose the completion
                log.exception("retrieval failed; completing without repository context")
        t2 = time.perf_counter()
        prompt = self._prompt(prefix, suffix, ctx.path, context)
        max_tokens = token_limit(self.settings, shape)
        backend = self._backend_for(ctx, shape)
        gen = backend.generate(
            prompt, max_tokens=max_tokens, stop=stop_rule(ctx, shape), cancel=cancel, forced=heal
        )
        text = clean(gen.text, ctx, shape)
        if not text and wants_a_line(ctx, shape):
            # The cursor waits on an empty line, so the user is about to write one; the model
            # ended, broke the line or wrote the next line again (the commonest miss of a
            # small model there). Its next-best line costs only the answer's tokens: the
            # prompt is already evaluated.
            again = backend.generate(prompt, max_tokens=max_tokens, stop=stop_rule(ctx, shape),
                                     cancel=cancel, forced=heal, avoid=gen.text or "\n")
            again.prompt_ms += gen.prompt_ms
            again.generate_ms += gen.generate_ms
            gen, text = again, clean(again.text, ctx, shape)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("generated %d tokens (%s): %r -> %r", gen.n_generated, gen.stop_reason,
                      gen.text, text)
        log.info("suggestion for %s:%d by %s (mean logprob %s%s)", ctx.path, ctx.line,
                 getattr(self.backend, "last", "") or self.backend.name,
                 "none" if gen.mean_logprob is None else f"{gen.mean_logprob:.3f}",
                 ", escalated" if "escalated_logprob" in gen.timings else "")
        self.cache.put(ctx.prefix, ctx.suffix, text, shape)
        t3 = time.perf_counter()
        return Suggestion(
            text, "model", shape,
            timings={
                "prepare_ms": (t1 - t0) * 1000,
                "retrieve_ms": (t2 - t1) * 1000,
                "prompt_ms": gen.prompt_ms,
                "generate_ms": gen.generate_ms,
                "total_ms": (t3 - t0) * 1000,
            },
            n_prompt=gen.n_prompt, n_reused=gen.n_reused,
        )
