"""Shared steps of the suggestion handlers: document lookup, running the engine, errors."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams, JsonRpcRequestCancelled
from pygls.uris import to_fs_path
from pygls.workspace import TextDocument

from ..backends.base import BackendError, Cancelled
from ..context import CursorContext
from ..convert import cursor_context
from ..engine import Suggestion
from ..server import SoftTimeout
from ..symbols import SourceTree
from . import regions

if TYPE_CHECKING:
    from ..server import SlmServer

log = logging.getLogger(__name__)

SUGGESTION_READY = "slm/suggestionReady"
"""Sent when a suggestion that missed its request's timeout is ready: the editor may ask
again at that place and gets it from the result cache at once (an empty answer is final
for VS Code, which does not ask again by itself)."""

REQUEST_FAILED = -32803  # LSP ErrorCodes.RequestFailed


class RequestFailed(JsonRpcException):
    """LSP's RequestFailed: the request was valid but could not be served.

    (pygls' JsonRpcServerError only accepts the JSON-RPC server range, which
    does not include LSP's own codes.)
    """

    CODE = REQUEST_FAILED


def open_document(ls: SlmServer, uri: str) -> TextDocument:
    """The open document, or an InvalidParams error naming the URI."""
    if uri not in ls.workspace.text_documents:
        raise JsonRpcInvalidParams(f"slm-lsp: document {uri} is not open (send didOpen first)")
    return ls.workspace.get_text_document(uri)


def context_at(
    ls: SlmServer, uri: str, position: types.Position, *, invoked: bool
) -> CursorContext:
    """The cursor context, or an InvalidParams error for a position outside the document."""
    doc = open_document(ls, uri)
    try:
        return cursor_context(doc, position, ls.root, invoked=invoked)
    except ValueError as exc:
        raise JsonRpcInvalidParams(f"slm-lsp: {exc}") from exc


async def suggest(ls: SlmServer, ctx: CursorContext) -> Suggestion:
    """Run the engine for ``ctx`` off the event loop, superseding older requests
    on the same document; engine errors become JSON-RPC errors."""
    settings = ls.settings.completion
    regions.touch(ls, ctx.uri, ctx.line)
    try:
        return await ls.run_cancellable(
            ctx.uri,
            lambda cancel: ls.host.engine(timeout=settings.timeout_ms / 1000).complete(ctx, cancel),
            timeout_ms=settings.timeout_ms,
        )
    except SoftTimeout as late:
        log.info("no suggestion within %d ms at %s:%d (still computing)", settings.timeout_ms,
                 ctx.path, ctx.line)
        late.when_done(lambda result: _announce(ls, ctx, result))
        return Suggestion("", "timeout")
    except Cancelled as exc:
        raise JsonRpcRequestCancelled("slm-lsp: request cancelled") from exc
    except BackendError as exc:
        raise RequestFailed(f"slm-lsp: {exc}") from exc


def _announce(ls: SlmServer, ctx: CursorContext, result: object) -> None:
    """Tell the editor that the suggestion at ``ctx`` is ready after all."""
    if isinstance(result, Suggestion) and result.text:
        log.info("late suggestion ready at %s:%d", ctx.path, ctx.line)
        ls.notify(SUGGESTION_READY, {"textDocument": {"uri": ctx.uri},
                                     "position": {"line": ctx.line, "character": ctx.character}})


def _open_docs(ls: SlmServer) -> dict[str, str]:
    """Open documents' text by file path."""
    docs: dict[str, str] = {}
    for uri, doc in list(ls.workspace.text_documents.items()):
        path = to_fs_path(uri)
        if path:
            docs[path] = doc.source
    return docs


def source_tree(ls: SlmServer) -> SourceTree:
    """The workspace's source files for symbol lookups (hover, code actions, definition
    context), one per server and workspace root; open documents win over the disk."""
    tree = ls.extensions.get("tree")
    if not isinstance(tree, SourceTree) or tree.root != ls.root:
        tree = SourceTree(ls.root, open_docs=lambda: _open_docs(ls),
                          index=lambda: ls.extensions.get("index"))
        ls.extensions["tree"] = tree
    return tree
