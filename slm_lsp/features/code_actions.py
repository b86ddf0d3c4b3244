"""textDocument/codeAction: "Explain selection" and "Generate docstring".

Listing the actions only parses the document; the model runs when an action is
used: the docstring edit is computed in `codeAction/resolve` (or, for clients
that cannot resolve edits, by a command that applies it with `workspace/applyEdit`),
and the explanation by the `slm.explainSelection` command, which opens the answer
as a Markdown document (`window/showDocument`) or shows it as a message.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams

from ..explain.docstring import DocEdit
from ..explain.explainer import Explainer
from ..explain.target import rel

# A runtime import (not TYPE_CHECKING): pygls resolves command handlers' type hints.
from ..server import SlmServer
from .hover import document_language, explainer_for, run_explainer

log = logging.getLogger(__name__)

EXPLAIN_COMMAND = "slm.explainSelection"
DOCSTRING_COMMAND = "slm.generateDocstring"
DOCSTRING_KIND = types.CodeActionKind.RefactorRewrite


def _wanted(only: list[str] | None, kind: str) -> bool:
    """True if the client asked for ``kind`` (or for everything)."""
    return only is None or any(kind == k or kind.startswith(k + ".") for k in only)


def _resolves_edits(ls: SlmServer) -> bool:
    caps = ls.client_capabilities.text_document
    support = caps.code_action.resolve_support if caps and caps.code_action else None
    return bool(support and "edit" in support.properties)


def _explain_command(uri: str, rng: types.Range) -> types.Command:
    """A bare command rather than a CodeAction holding one: lsprotocol-based clients read
    any code action that has a ``command`` as a Command, and mangle it."""
    args = [{"uri": uri, "range": {"start": {"line": rng.start.line, "character": rng.start.character},
                                   "end": {"line": rng.end.line, "character": rng.end.character}}}]
    return types.Command(title="Explain selection (slm-lsp)", command=EXPLAIN_COMMAND,
                         arguments=args)


def _docstring_action(ls: SlmServer, uri: str, line: int, name: str) -> types.CodeAction:
    data = {"uri": uri, "line": line}
    action = types.CodeAction(title=f"Generate docstring for {name} (slm-lsp)",
                              kind=DOCSTRING_KIND, data=data)
    if not _resolves_edits(ls):
        action.command = types.Command(title="Generate docstring", command=DOCSTRING_COMMAND,
                                       arguments=[data])
    return action


def _selected_lines(rng: types.Range) -> tuple[int, int]:
    """First and last selected line (a selection ending at column 0 stops the line before)."""
    end = rng.end.line - 1 if rng.end.character == 0 and rng.end.line > rng.start.line \
        else rng.end.line
    return rng.start.line, end


async def docstring_edit(ls: SlmServer, uri: str, line: int) -> types.WorkspaceEdit | None:
    """The edit inserting a documentation comment for the definition at ``line``."""
    path, text, language = document_language(ls, uri)
    explainer = explainer_for(ls)
    edit: DocEdit | None = await run_explainer(
        ls, f"action:{uri}", lambda cancel, budget: explainer.docstring(
            path, text, language, line, cancel, budget))
    if edit is None:
        return None
    position = types.Position(line=edit.line, character=0)
    return types.WorkspaceEdit(changes={uri: [types.TextEdit(
        range=types.Range(start=position, end=position), new_text=edit.text)]})


def _write_markdown(explainer: Explainer, name: str, body: str) -> Path:
    """Write an explanation document atomically under the workspace's explain cache."""
    base = explainer.cache.directory or Path(tempfile.gettempdir()) / "slm-lsp-explain"
    folder = base / "selections"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".md")
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(body)
    os.replace(tmp, target)
    return target


async def _show(ls: SlmServer, title: str, text: str, file: Path) -> str:
    """Show the explanation: as a document where the client can open one, else a message."""
    window = ls.client_capabilities.window
    if window is not None and window.show_document is not None and window.show_document.support:
        result = await ls.window_show_document_async(
            types.ShowDocumentParams(uri=file.as_uri(), take_focus=False))
        if result.success:
            return "document"
    ls.window_show_message(types.ShowMessageParams(type=types.MessageType.Info,
                                                   message=f"{title}\n\n{text}"))
    return "message"


def register(server: SlmServer) -> None:
    """Code action, resolve and command handlers."""

    @server.feature(types.TEXT_DOCUMENT_CODE_ACTION, types.CodeActionOptions(
        code_action_kinds=[DOCSTRING_KIND], resolve_provider=True))
    async def code_action(ls: SlmServer, params: types.CodeActionParams
                          ) -> list[types.CodeAction | types.Command] | None:
        """Returns the explain and docstring actions that apply at the range (no model yet)."""
        if not ls.settings.explain.enabled:
            return None
        uri = params.text_document.uri
        path, text, language = document_language(ls, uri)
        only = list(params.context.only) if params.context.only else None
        actions: list[types.CodeAction | types.Command] = []
        if params.range.start != params.range.end and only is None:
            actions.append(_explain_command(uri, params.range))
        if _wanted(only, DOCSTRING_KIND):
            explainer = explainer_for(ls)
            found = await asyncio.to_thread(explainer.documentable, path, text, language,
                                            params.range.start.line)
            if found is not None:
                actions.append(_docstring_action(ls, uri, params.range.start.line, found[0].name))
        return actions or None

    @server.feature(types.CODE_ACTION_RESOLVE)
    async def resolve(ls: SlmServer, action: types.CodeAction) -> types.CodeAction:
        """Fills in the docstring edit (the model writes the summary)."""
        data = action.data if isinstance(action.data, dict) else {}
        if action.kind == DOCSTRING_KIND and "uri" in data:
            action.edit = await docstring_edit(ls, data["uri"], int(data.get("line", 0)))
        return action

    @server.command(DOCSTRING_COMMAND)
    async def generate_docstring(ls: SlmServer, *args: Any) -> bool:
        """Computes the docstring edit and applies it with workspace/applyEdit."""
        data = args[0] if args and isinstance(args[0], dict) else {}
        if "uri" not in data:
            raise JsonRpcInvalidParams("slm-lsp: generateDocstring needs {uri, line}")
        edit = await docstring_edit(ls, data["uri"], int(data.get("line", 0)))
        if edit is None:
            return False
        result = await ls.workspace_apply_edit_async(
            types.ApplyWorkspaceEditParams(edit=edit, label="Generate docstring"))
        return bool(result.applied)

    @server.command(EXPLAIN_COMMAND)
    async def explain_selection(ls: SlmServer, *args: Any) -> dict[str, str]:
        """Explains the selected lines; returns {text, uri, shownAs}."""
        data = args[0] if args and isinstance(args[0], dict) else {}
        try:
            uri = data["uri"]
            raw = data["range"]
            rng = types.Range(start=types.Position(**raw["start"]), end=types.Position(**raw["end"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise JsonRpcInvalidParams("slm-lsp: explainSelection needs {uri, range}") from exc
        path, text, language = document_language(ls, uri)
        start, end = _selected_lines(rng)
        explainer = explainer_for(ls)
        fields = await asyncio.to_thread(explainer.selection_fields, path, text, language, start, end)
        result = await run_explainer(ls, f"action:{uri}", lambda cancel, budget:
                                     explainer.run_task("selection", fields, cancel, budget))
        text_out = result.text or f"No explanation: {result.problem or 'the model gave none'}."
        title = f"Explanation of {rel(path, ls.root)}, lines {start + 1}-{end + 1}"
        body = f"# {title}\n\n```{language or ''}\n{fields['selection']}\n```\n\n{text_out}\n"
        digest = hashlib.sha256(body.encode()).hexdigest()[:10]
        file = _write_markdown(explainer, f"{Path(path).stem}-L{start + 1}-{digest}.md", body)
        shown = await _show(ls, title, text_out, file)
        return {"text": text_out, "uri": file.as_uri(), "shownAs": shown}
