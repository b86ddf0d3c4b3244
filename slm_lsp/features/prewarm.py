"""`slm/cursor`: the editor reports where the cursor came to rest; the suggestion there is
computed ahead of the first keystroke.

A jump to a line far from the last suggestion shares no prompt with the model's KV
cache, and evaluating ~1,500 prompt tokens takes about ten seconds on two cores.
The editors send this notification once the cursor has rested for a moment;
after a short delay the server runs the normal completion for that position as a
low-priority request of its own: any completion or hover request cancels it, and what
it evaluated so far stays in the KV cache for the next prompt to use. One warm-up
runs at a time; a newer position replaces an older one. A position reported while
the model loads (the file the editor opened with) is warmed once it has loaded.

Params: ``{"textDocument": {"uri": ...}, "position": {"line": .., "character": ..}}``.
Bad params or a closed document are logged and ignored: a notification has no reply.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams

from ..backends.base import BackendError, Cancelled
from ..server import WARMUP_KEY
from . import regions
from ._common import context_at

if TYPE_CHECKING:
    from ..server import SlmServer

log = logging.getLogger(__name__)

CURSOR_NOTIFICATION = "slm/cursor"
SETTLE_S = 0.25
"""Wait this long after a notification; a newer one or a request for the document
in the meantime makes it moot."""
LOAD_POLL_S = 0.2
"""While the model loads, how often a pending warm-up looks whether it can start."""


def register(server: SlmServer) -> None:
    """The `slm/cursor` notification handler."""
    latest: list[object] = [None]

    @server.feature(CURSOR_NOTIFICATION)
    async def cursor(ls: SlmServer, params: Any) -> None:
        """Warms the prompt at the reported position (no reply: it is a notification)."""
        if not (ls.settings.completion.enabled and ls.settings.completion.warm_on_cursor):
            return
        where = _parse(params)
        if where is None:
            log.info("%s: ignored, params need textDocument.uri and position", CURSOR_NOTIFICATION)
            return
        uri, position = where
        regions.touch(ls, uri, position.line)
        token = latest[0] = object()
        await asyncio.sleep(SETTLE_S)
        while not ls.host.settled and latest[0] is token:
            await asyncio.sleep(LOAD_POLL_S)
        if latest[0] is not token:
            return  # the cursor moved on; that report warms instead
        if ls.request_running(uri):
            log.debug("%s: no warm-up at %s:%d, a request there is running", CURSOR_NOTIFICATION,
                      uri, position.line)
            return
        try:
            ctx = context_at(ls, uri, position, invoked=False)
        except JsonRpcInvalidParams as exc:  # not open, or the position is outside it
            log.debug("%s: %s", CURSOR_NOTIFICATION, exc)
            return
        try:
            suggestion = await ls.run_cancellable(
                WARMUP_KEY, lambda cancel: ls.host.engine(timeout=0).complete(ctx, cancel))
        except (Cancelled, BackendError) as exc:  # a request took over, or there is no model
            log.debug("warm-up at %s:%d stopped: %s", ctx.path, ctx.line, exc or "cancelled")
            return
        log.debug("warmed %s:%d in %.0f ms (%d of %d prompt tokens were cached)", ctx.path,
                  ctx.line, suggestion.timings.get("total_ms", 0.0), suggestion.n_reused,
                  suggestion.n_prompt)


def _parse(params: Any) -> tuple[str, types.Position] | None:
    """The URI and position of the params, or None when they are malformed."""
    try:
        uri = params.textDocument.uri
        line, character = params.position.line, params.position.character
    except AttributeError:
        return None
    if not isinstance(uri, str) or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (line, character)):
        return None
    return uri, types.Position(line=line, character=character)
