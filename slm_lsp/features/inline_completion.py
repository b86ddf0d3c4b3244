"""textDocument/inlineCompletion (LSP 3.18): ghost-text suggestions while typing."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from lsprotocol import types

from ..convert import inline_items
from ._common import context_at, suggest

if TYPE_CHECKING:
    from ..server import SlmServer

log = logging.getLogger(__name__)


def register(server: SlmServer) -> None:
    """Inline completion handler."""

    @server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
    async def inline_completion(
        ls: SlmServer, params: types.InlineCompletionParams
    ) -> types.InlineCompletionList:
        """Returns at most one suggestion for the cursor, or an empty list."""
        if not ls.settings.completion.enabled:
            return types.InlineCompletionList(items=[])
        invoked = params.context.trigger_kind == types.InlineCompletionTriggerKind.Invoked
        ctx = context_at(ls, params.text_document.uri, params.position, invoked=invoked)
        suggestion = await suggest(ls, ctx)
        log.debug("inline %s:%d:%d -> %r (%s, %s)", ctx.path, ctx.line, ctx.character,
                  suggestion.text, suggestion.source, suggestion.timings)
        return inline_items(suggestion, params.position)
