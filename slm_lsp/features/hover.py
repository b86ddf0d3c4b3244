"""textDocument/hover: where a symbol is defined, its signature, and what it does.

The header (definition site and signature) comes from tree-sitter alone; the
explanation below it from the local model, through ``slm_lsp.explain``. The
model runs in its own context (or a dedicated explanation model), so hovering
never evicts the completion prompt from the KV cache; while a completion is in
flight the explanation pauses between tokens so that completions keep both cores.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from lsprotocol import types
from pygls.exceptions import JsonRpcRequestCancelled
from pygls.uris import to_fs_path

from indexer.languages import normalize

from ..backends.base import Cancelled, ModelBackend
from ..explain.cache import ExplainCache
from ..explain.explainer import Explainer, Explanation
from ..explain.router import ModelRouter
from ..explain.target import header_markdown
from ..paths import workspace_dir
from ..server import BACKGROUND_PREFIX
from ..settings import Settings
from ._common import open_document, source_tree

if TYPE_CHECKING:
    from ..server import SlmServer

log = logging.getLogger(__name__)

T = TypeVar("T")

KEY_PREFIX = BACKGROUND_PREFIX
"""Prefix of our `run_cancellable` keys (completions use the bare document URI)."""
BUDGET_S = 12.0
"""Generation stops this long after its first token, keeping the sentences written so far."""
TIMEOUT_MS = 90_000
"""Hard bound on one explanation request, prompt evaluation and model loading included."""
MAX_PAUSE_S = 10.0
"""Longest an explanation waits in total for completions to finish."""


# -- shared with code_actions -----------------------------------------------------------


def _shared_backend(ls: SlmServer, timeout: float) -> ModelBackend | None:
    """The completion model, waiting up to ``timeout`` seconds for it to load."""
    if timeout > 0:
        ls.host.engine(timeout=timeout)
    return ls.host.backend()


def _configure(ls: SlmServer, settings: Settings) -> None:
    """Settings hook: new explanation settings, or a new explanation model."""
    explainer = ls.extensions.get("explain")
    if isinstance(explainer, Explainer):
        explainer.settings = settings.explain
        explainer.models.configure(settings.explain, settings.model)


def explainer_for(ls: SlmServer) -> Explainer:
    """The workspace's explainer, created on first use (on the event loop thread)."""
    found = ls.extensions.get("explain")
    if isinstance(found, Explainer):
        if found.tree.root == ls.root:
            return found
        found.models.close()  # the workspace root changed
    tree = source_tree(ls)
    models = ModelRouter(lambda timeout: _shared_backend(ls, timeout))
    models.configure(ls.settings.explain, ls.settings.model)
    cache = ExplainCache(workspace_dir(ls.root) / "explain" if ls.root else None)
    explainer = Explainer(tree, models, cache, ls.settings.explain)
    ls.extensions["explain"] = explainer
    return explainer


class YieldingEvent(threading.Event):
    """A cancel flag whose check pauses while ``busy()`` (a completion is running)."""

    def __init__(self, inner: threading.Event, busy: Callable[[], bool]) -> None:
        super().__init__()
        self._inner = inner
        self._busy = busy
        self._paused = 0.0

    def is_set(self) -> bool:
        while self._paused < MAX_PAUSE_S and not self._inner.is_set() and self._busy():
            time.sleep(0.02)
            self._paused += 0.02
        return self._inner.is_set()

    def set(self) -> None:
        self._inner.set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._inner.wait(timeout)


async def run_explainer(ls: SlmServer, key: str, fn: Callable[[threading.Event, float], T]) -> T:
    """Run ``fn(cancel, budget_s)`` off the loop; `$/cancelRequest` or a newer request on
    ``key`` stops it at the next token (JSON-RPC RequestCancelled)."""
    def work(cancel: threading.Event) -> T:
        return fn(YieldingEvent(cancel, ls.completion_running), BUDGET_S)

    try:
        return await ls.run_cancellable(KEY_PREFIX + key, work, timeout_ms=TIMEOUT_MS)
    except Cancelled as exc:
        raise JsonRpcRequestCancelled("slm-lsp: request cancelled") from exc


def document_language(ls: SlmServer, uri: str) -> tuple[str, str, str | None]:
    """(file path, text, language) of an open document."""
    doc = open_document(ls, uri)
    path = to_fs_path(uri) or uri
    return path, doc.source, normalize(doc.language_id, path)


# -- hover ------------------------------------------------------------------------------


def _footer(result: Explanation, model: str) -> str:
    if result.text:
        how = "cached" if result.source == "cache" else f"{result.ms / 1000:.1f} s"
        if result.timed_out:
            how += " · cut short by the time budget"
        return f"{result.text}\n\n*slm-lsp · {model} · {how}*"
    if result.problem:
        return f"*No explanation: {result.problem}*"
    if result.removed:
        return "*No explanation: the model's answer named code that is not in this repository.*"
    if result.timed_out:
        return "*No explanation: the model did not finish a sentence within the time budget.*"
    return "*No explanation: the model gave none.*"


def _utf16(line: str, col: int) -> int:
    return len(line[:col].encode("utf-16-le")) // 2


def register(server: SlmServer) -> None:
    """Hover handler and the explainer's settings hook."""
    server.settings_hooks.append(lambda settings: _configure(server, settings))

    @server.feature(types.TEXT_DOCUMENT_HOVER)
    async def hover(ls: SlmServer, params: types.HoverParams) -> types.Hover | None:
        """Returns the symbol's definition site and signature, then a short explanation."""
        uri = params.text_document.uri
        path, text, language = document_language(ls, uri)
        pos = open_document(ls, uri).position_from_client_units(params.position)
        explainer = explainer_for(ls)
        target = await asyncio.to_thread(explainer.target_at, path, text, language,
                                         pos.line, pos.character)
        if target is None or target.definition is None:
            return None
        parts = [header_markdown(target, ls.root)]
        if ls.settings.explain.enabled:
            result = await run_explainer(ls, f"hover:{uri}",
                                         lambda cancel, budget: explainer.explain(
                                             target, cancel, budget))
            log.info("hover %s: %s in %.0f ms", target.definition.qualname, result.source, result.ms)
            parts.append(_footer(result, explainer.models.identity().split(":")[0]))
        line = text.split("\n")[target.ref.line]
        span = types.Range(
            start=types.Position(line=target.ref.line, character=_utf16(line, target.ref.start)),
            end=types.Position(line=target.ref.line, character=_utf16(line, target.ref.end)))
        value = "\n\n---\n\n".join(p for p in parts if p)
        return types.Hover(contents=types.MarkupContent(kind=types.MarkupKind.Markdown,
                                                        value=value), range=span)
