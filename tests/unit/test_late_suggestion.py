"""A suggestion that misses its request's timeout is announced when it is ready
(`slm/suggestionReady`), and asking again there is answered from the cache at once."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from lsprotocol import types

from slm_lsp.backends.fake import FakeBackend
from slm_lsp.features._common import SUGGESTION_READY, context_at, suggest
from slm_lsp.settings import CompletionSettings, Settings
from tests.unit.test_prewarm import URI, server


def quick_timeout(ls: Any, ms: int = 100) -> None:
    ls.settings = Settings(completion=CompletionSettings(timeout_ms=ms))


def capture(ls: Any) -> list[tuple[str, Any]]:
    sent: list[tuple[str, Any]] = []
    ls.notify = lambda method, params: sent.append((method, params))  # type: ignore[method-assign]
    return sent


def test_a_late_suggestion_is_announced_and_then_served_from_the_cache():
    backend = FakeBackend("return b", delay=0.05)  # 8 characters: about 0.4 s
    ls = server(backend)
    quick_timeout(ls)
    sent = capture(ls)
    where = types.Position(line=5, character=4)

    async def scenario() -> tuple[str, list[Any], str, float]:
        first = await suggest(ls, context_at(ls, URI, where, invoked=False))
        before = list(sent)
        for _ in range(100):
            if sent:
                break
            await asyncio.sleep(0.02)
        start = time.monotonic()
        again = await suggest(ls, context_at(ls, URI, where, invoked=True))
        return first.text, before, again.text, time.monotonic() - start

    first, before, again, seconds = asyncio.run(scenario())
    assert first == "" and before == []
    assert sent == [(SUGGESTION_READY, {"textDocument": {"uri": URI},
                                        "position": {"line": 5, "character": 4}})]
    assert again == "return b" and seconds < 0.05 and len(backend.prompts) == 1


def test_a_superseded_late_suggestion_is_not_announced():
    backend = FakeBackend("return b", delay=0.05)
    ls = server(backend)
    quick_timeout(ls)
    sent = capture(ls)

    async def scenario() -> None:
        await suggest(ls, context_at(ls, URI, types.Position(line=5, character=4), invoked=False))
        ls.supersede(URI)  # the user typed on: a newer request on the document
        await asyncio.sleep(0.6)

    asyncio.run(scenario())
    assert sent == []
