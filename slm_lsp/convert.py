"""Protocol types <-> engine types. The only engine-side module that knows lsprotocol."""

from __future__ import annotations

import os
from pathlib import Path

from lsprotocol import types
from pygls.uris import to_fs_path
from pygls.workspace import TextDocument

from indexer.languages import normalize

from .context import CursorContext, split_at
from .engine import Suggestion


def relative_path(uri: str, root: str | None) -> str | None:
    """The document's path relative to the workspace root, else its file name."""
    fs_path = to_fs_path(uri)
    if not fs_path:
        return None
    if root:
        try:
            return Path(os.path.relpath(fs_path, root)).as_posix()
        except ValueError:  # another drive on Windows
            pass
    return Path(fs_path).name


def cursor_context(
    doc: TextDocument,
    position: types.Position,
    root: str | None,
    *,
    invoked: bool = False,
) -> CursorContext:
    """The engine's view of ``position`` in ``doc``; ValueError if it is outside."""
    prefix, suffix = split_at(doc.source, position.line, position.character)
    rel = relative_path(doc.uri, root)
    return CursorContext(
        uri=doc.uri,
        path=rel,
        language=normalize(doc.language_id, rel or doc.uri),
        prefix=prefix,
        suffix=suffix,
        line=position.line,
        character=position.character,
        version=doc.version,
        invoked=invoked,
    )


def inline_items(suggestion: Suggestion, position: types.Position) -> types.InlineCompletionList:
    """The suggestion as an inline completion list (empty when there is nothing to show)."""
    if not suggestion.text:
        return types.InlineCompletionList(items=[])
    item = types.InlineCompletionItem(
        insert_text=suggestion.text,
        range=types.Range(start=position, end=position),
    )
    return types.InlineCompletionList(items=[item])


def _word_start(line_before: str) -> int:
    i = len(line_before)
    while i > 0 and (line_before[i - 1].isalnum() or line_before[i - 1] == "_"):
        i -= 1
    return i


def completion_items(
    suggestion: Suggestion, ctx: CursorContext, position: types.Position
) -> types.CompletionList:
    """The suggestion as one completion item for clients without inline completion.

    The edit starts at the word being typed so that the client's own filtering
    (which matches that word against the item) keeps the item visible.
    """
    if not suggestion.text:
        return types.CompletionList(is_incomplete=True, items=[])
    before = ctx.line_before
    start = _word_start(before)
    word = before[start:]
    start_char = position.character - len(word.encode("utf-16-le")) // 2
    new_text = word + suggestion.text
    first_line = new_text.split("\n", 1)[0]
    label = first_line.strip() or new_text.strip()
    item = types.CompletionItem(
        label=label[:80],
        kind=types.CompletionItemKind.Snippet if "\n" in new_text else types.CompletionItemKind.Text,
        detail="slm-lsp (local model)",
        documentation=types.MarkupContent(
            kind=types.MarkupKind.Markdown, value=f"```\n{new_text}\n```"
        ),
        filter_text=word or label,
        sort_text="0",
        preselect=True,
        insert_text_format=types.InsertTextFormat.PlainText,
        text_edit=types.TextEdit(
            range=types.Range(
                start=types.Position(line=position.line, character=start_char), end=position
            ),
            new_text=new_text,
        ),
    )
    return types.CompletionList(is_incomplete=True, items=[item])
