"""Region warm-ups: while the editor is idle, the document the user works in is
prepared region by region, so that a first request anywhere near is fast.

A request at a line the model's KV cache has not seen evaluates its whole prompt
(with the default budgets up to about 1,100 tokens). Every cursor in a band of lines gets a
prompt that starts the same way (``fit_prefix`` cuts the text above the cursor
at aligned lines), so one evaluation of the band's text serves all of them: it
is saved as a KV snapshot, and a request there reads it back and evaluates only
the text around its cursor (about 1 s). See ``CompletionEngine.warm_regions``.

The regions of the focused document (the one last opened, reported by
`slm/cursor` or asked for a completion) are warmed nearest the cursor first, at
most ``slm.completion.warmRegions`` of them, only after ``IDLE_S`` without any
request, and never while the index is being built. Any request interrupts a
warm-up within ``KVCache.WARM_STEP`` tokens; the work resumes once idle again.
When every region is warm the task ends: an idle server uses no CPU.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lsprotocol import types

from ..backends.base import BackendError, Cancelled
from ..context import CursorContext
from ..convert import cursor_context
from ..engine import WarmRegion, nearest_first
from ..server import WARMUP_KEY

if TYPE_CHECKING:
    from ..server import SlmServer

log = logging.getLogger(__name__)

IDLE_S = 1.0
"""Quiet time (no request, no warm-up) before a region warm-up starts."""
POLL_S = 0.25
"""How often a pending warm-up looks whether the server has become idle."""


class RegionWarmer:
    """Warms the regions of the focused document while the server is idle."""

    def __init__(self, server: SlmServer) -> None:
        self.ls = server
        self.focus: tuple[str, int] | None = None
        self._task: asyncio.Task[None] | None = None
        self._plans: dict[str, tuple[int | None, list[WarmRegion]]] = {}
        """Per document: (version, its regions); a new cursor line only reorders them."""
        self._done: dict[str, tuple[int | None, set[int]]] = {}
        """Per document: (version, anchors of the regions warmed at that version)."""
        self.warmed = 0
        """Regions evaluated so far (for logs and tests)."""

    def touch(self, uri: str, line: int) -> None:
        """The user works at ``uri``:``line``; warm around there once idle."""
        self.focus = (uri, line)
        if self.ls.settings.completion.warm_regions <= 0 or not self.ls.settings.completion.enabled:
            return
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())

    def pending(self) -> bool:
        """Whether warm-ups are due or running."""
        return self._task is not None and not self._task.done()

    def _quiet(self) -> bool:
        ls = self.ls
        index = ls.extensions.get("index")
        building = index is not None and getattr(index, "building", lambda: False)()
        return (ls.host.settled and not ls.busy() and not building
                and time.monotonic() - ls.last_request >= IDLE_S)

    async def _run(self) -> None:
        """Warm one region at a time until none is left for the focus."""
        worked = 0
        while True:
            while not self._quiet():
                await asyncio.sleep(POLL_S)
            if self.focus is None or self.ls.settings.completion.warm_regions <= 0:
                return
            try:
                job = await asyncio.to_thread(self._next, self.focus)
            except BackendError as exc:  # no model: nothing to warm with
                log.debug("no region warm-up: %s", exc)
                return
            if job is None:
                if worked:  # the benchmark's reading pause waits for this line
                    # (the state buffers saved and read back: the idle trim frees them)
                    log.info("region warm-ups done for %s (%d evaluated)", self.focus[0], worked)
                return
            ctx, region = job
            if not self._quiet():  # a request came in while planning
                continue
            t0 = time.perf_counter()
            try:
                evaluated = await self.ls.run_cancellable(WARMUP_KEY, self._warm_job(ctx, region))
            except Cancelled:
                log.debug("region warm-up of %s:%d-%d interrupted", ctx.path, region.first,
                          region.last)
                continue
            except BackendError as exc:
                log.info("region warm-ups stopped: %s", exc)
                return
            except Exception:  # a failure here must never reach the user's requests
                log.exception("region warm-up of %s failed", ctx.path)
                return
            self._mark_done(ctx, region)
            if evaluated:
                worked += 1
                self.warmed += 1
                log.info("warmed %s lines %d-%d in %.1f s (%d tokens)", ctx.path, region.first + 1,
                         region.last + 1, time.perf_counter() - t0, evaluated)

    def _warm_job(self, ctx: CursorContext, region: WarmRegion) -> Callable[[threading.Event], int]:
        return lambda cancel: self.ls.host.engine(timeout=0).warm(ctx, region, cancel)

    def _mark_done(self, ctx: CursorContext, region: WarmRegion) -> None:
        version, anchors = self._done.get(ctx.uri, (None, set()))
        if version != ctx.version:
            anchors = set()
        anchors.add(region.anchor)
        self._done[ctx.uri] = (ctx.version, anchors)

    def _next(self, focus: tuple[str, int]) -> tuple[CursorContext, WarmRegion] | None:
        """The next region to warm for ``focus`` (in a worker thread), or None."""
        uri, line = focus
        docs = self.ls.workspace.text_documents
        if uri not in docs:  # closed since
            self._plans.pop(uri, None)
            self._done.pop(uri, None)
            return None
        doc = docs[uri]
        try:
            ctx = cursor_context(doc, types.Position(line=0, character=0), self.ls.root,
                                 invoked=False)
        except ValueError:
            return None
        plan = self._plans.get(uri)
        if plan is None or plan[0] != ctx.version:
            regions = self.ls.host.engine(timeout=0).warm_regions(ctx.suffix, line)
            self._plans[uri] = (ctx.version, regions)
        else:
            regions = nearest_first(plan[1], line)
        version, anchors = self._done.get(uri, (None, set()))
        if version != ctx.version:
            anchors = set()
        for region in regions[:self.ls.settings.completion.warm_regions]:
            if region.anchor not in anchors:
                return ctx, region
        return None


def register(server: SlmServer) -> None:
    """didOpen/didClose tracking for the region warm-ups."""
    warmer = RegionWarmer(server)
    server.extensions["regions"] = warmer

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: SlmServer, params: types.DidOpenTextDocumentParams) -> None:
        """A newly opened document becomes the focus (its first lines until the cursor is known)."""
        warmer.touch(params.text_document.uri, 0)

    @server.command("slm.warmState")
    def warm_state(ls: SlmServer, *args: Any) -> dict[str, Any]:
        """Returns `{"focus": {"uri", "line"} | null, "warmed": n, "pending": bool}`: the
        regions evaluated since the start, and whether warm-ups are still due."""
        focus = warmer.focus
        return {"focus": None if focus is None else {"uri": focus[0], "line": focus[1]},
                "warmed": warmer.warmed, "pending": warmer.pending()}


def touch(server: SlmServer, uri: str, line: int) -> None:
    """Tell the region warm-ups where the user works (no-op when they are not registered)."""
    warmer: Any = server.extensions.get("regions")
    if warmer is not None:
        warmer.touch(uri, line)
