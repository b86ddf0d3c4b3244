"""The `slm/cursor` handler in-process, with the scripted backend (no model, no client)."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

import pytest
from lsprotocol import types

from slm_lsp.backends.fake import FakeBackend
from slm_lsp.features import build_server, prewarm
from slm_lsp.features._common import context_at, suggest
from slm_lsp.server import WARMUP_KEY, SlmServer

URI = "file:///work/warm.py"
TEXT = "def f(a):\n    return a\n\n\ndef g(b):\n    \n"
BEFORE = TEXT[:-1]
"""The text before the cursor of `cursor()` (line 5, character 4)."""


def with_document(factory: Any) -> SlmServer:
    """A server with the document at URI open; its model is not loaded yet."""
    from pygls.workspace import Workspace

    ls = build_server(factory=factory)
    ls.protocol._workspace = Workspace(None)  # type: ignore[attr-defined]
    ls.workspace.put_text_document(
        types.TextDocumentItem(uri=URI, language_id="python", version=1, text=TEXT))
    return ls


def server(backend: FakeBackend) -> SlmServer:
    ls = with_document(lambda _settings: backend)
    ls.host.configure(ls.settings, force=True).join()  # type: ignore[union-attr]
    return ls


def handler(ls: SlmServer) -> Any:
    return ls.protocol.fm.features[prewarm.CURSOR_NOTIFICATION]


def cursor(uri: str = URI, line: Any = 5, character: Any = 4) -> Any:
    return SimpleNamespace(textDocument=SimpleNamespace(uri=uri),
                           position=SimpleNamespace(line=line, character=character))


def test_a_resting_cursor_gets_its_suggestion_computed_and_cached():
    backend = FakeBackend("return b")
    ls = server(backend)
    asyncio.run(handler(ls)(cursor()))
    assert len(backend.prompts) == 1 and backend.prompts[0].endswith("<|fim_middle|>")
    assert "def g(b):<|fim_suffix|>" in backend.prompts[0]  # the prompt at line 5
    hit = ls.host.engine().cache.get(BEFORE, "\n")
    assert hit is not None and hit.text == "return b"


def test_only_the_last_of_quick_moves_is_warmed():
    backend = FakeBackend("x")
    ls = server(backend)

    async def moves() -> None:
        await asyncio.gather(handler(ls)(cursor(line=0, character=0)),
                             handler(ls)(cursor(line=1, character=4)),
                             handler(ls)(cursor(line=5, character=4)))

    asyncio.run(moves())
    assert len(backend.prompts) == 1 and "def g(b):<|fim_suffix|>" in backend.prompts[0]


def test_a_running_request_on_the_document_wins():
    backend = FakeBackend("x")
    ls = server(backend)

    async def move_while_busy() -> None:
        busy = ls.supersede(URI)  # a completion request for the document is in flight
        await handler(ls)(cursor())
        ls.finished(URI, busy)

    asyncio.run(move_while_busy())
    assert backend.prompts == []


@pytest.mark.parametrize("params", [
    None, SimpleNamespace(), cursor(uri=None), cursor(line=-1), cursor(character="3"),
    cursor(line=True), cursor(uri="file:///not/open.py"), cursor(line=99),
])
def test_bad_params_and_unknown_documents_are_ignored(params):
    backend = FakeBackend("x")
    ls = server(backend)
    asyncio.run(handler(ls)(params))
    assert backend.prompts == []


def test_the_setting_turns_it_off():
    backend = FakeBackend("x")
    ls = server(backend)
    ls.apply_settings({"completion": {"warmOnCursor": False}}, source="test")
    asyncio.run(handler(ls)(cursor()))
    assert backend.prompts == []


def test_a_completion_request_cancels_the_warm_up_at_once():
    backend = FakeBackend(lambda prompt: "y" * 200 if "def g(b):<|fim_suffix|>" in prompt else "x",
                          delay=0.02)  # the warm-up would generate for 4 s
    ls = server(backend)

    async def scenario() -> tuple[str, float, bool]:
        warm = asyncio.ensure_future(handler(ls)(cursor()))
        await asyncio.sleep(prewarm.SETTLE_S + 0.3)
        assert ls.request_running(WARMUP_KEY) and not ls.completion_running()
        start = time.monotonic()
        got = await suggest(ls, context_at(ls, URI, types.Position(line=1, character=4),
                                           invoked=False))
        await asyncio.wait_for(warm, 1.0)
        return got.text, time.monotonic() - start, ls.request_running(WARMUP_KEY)

    text, seconds, still_warming = asyncio.run(scenario())
    assert text == "x" and seconds < 1.0 and not still_warming
    assert ls.host.engine().cache.get(BEFORE, "\n") is None


def test_a_cursor_reported_while_the_model_loads_is_warmed_once_it_has_loaded():
    import threading

    from slm_lsp.backends.base import BackendError

    backend = FakeBackend("return b")
    gate = threading.Event()

    def slow_load(_settings: Any) -> FakeBackend:
        if not gate.wait(10):
            raise BackendError("the test never let the model load")
        return backend

    ls = with_document(slow_load)
    loading = ls.host.configure(ls.settings, force=True)
    assert loading is not None and not ls.host.settled

    async def scenario() -> None:
        early = asyncio.ensure_future(handler(ls)(cursor(line=0, character=0)))
        await asyncio.sleep(prewarm.SETTLE_S + 2 * prewarm.LOAD_POLL_S)
        late = asyncio.ensure_future(handler(ls)(cursor()))  # replaces the first position
        await asyncio.sleep(prewarm.SETTLE_S + 2 * prewarm.LOAD_POLL_S)
        assert not early.done() or backend.prompts == []
        assert not late.done(), "the warm-up waits for the model"
        gate.set()
        await asyncio.wait_for(asyncio.gather(early, late), 5)

    asyncio.run(scenario())
    loading.join()
    assert len(backend.prompts) == 1 and "def g(b):<|fim_suffix|>" in backend.prompts[0]


def test_a_cursor_reported_while_the_model_fails_to_load_is_dropped():
    from slm_lsp.backends.base import BackendError

    def broken(_settings: Any) -> FakeBackend:
        time.sleep(0.5)
        raise BackendError("no such model")

    ls = with_document(broken)
    ls.host.configure(ls.settings, force=True)
    asyncio.run(asyncio.wait_for(handler(ls)(cursor()), 5))  # returns once the load failed
    assert ls.host.settled and ls.host.state == "error"
