"""textDocument/completion: the suggestion as one item, for clients without inline completion."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lsprotocol import types

from ..convert import completion_items
from ._common import context_at, suggest

if TYPE_CHECKING:
    from ..server import SlmServer


def register(server: SlmServer) -> None:
    """Completion handler."""

    @server.feature(types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions())
    async def completion(ls: SlmServer, params: types.CompletionParams) -> types.CompletionList:
        """Returns one item holding the model's suggestion (incomplete, so clients re-ask)."""
        if not ls.settings.completion.enabled:
            return types.CompletionList(is_incomplete=False, items=[])
        ctx = context_at(ls, params.text_document.uri, params.position, invoked=True)
        return completion_items(await suggest(ls, ctx), ctx, params.position)
