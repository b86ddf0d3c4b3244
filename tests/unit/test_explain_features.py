"""Helpers of the hover and code-action handlers (no server process)."""

from __future__ import annotations

import threading
import time

from lsprotocol import types

from slm_lsp.explain.explainer import Explanation
from slm_lsp.features.code_actions import _selected_lines, _wanted
from slm_lsp.features.hover import KEY_PREFIX, YieldingEvent, _footer


def test_yielding_event_pauses_while_busy_and_still_reports_cancel():
    inner = threading.Event()
    busy = [True]
    flag = YieldingEvent(inner, lambda: busy[0])
    threading.Timer(0.15, lambda: busy.__setitem__(0, False)).start()
    start = time.monotonic()
    assert flag.is_set() is False
    assert time.monotonic() - start >= 0.14
    busy[0] = True
    threading.Timer(0.1, inner.set).start()
    assert flag.is_set() is True  # a cancel ends the pause at once
    assert time.monotonic() - start < 1


def test_completion_running_ignores_our_own_requests():
    from slm_lsp.server import SlmServer

    ls = SlmServer(factory=lambda settings: None)  # no model is loaded in this test
    assert not ls.completion_running()
    hover = ls.supersede(f"{KEY_PREFIX}hover:file:///a.py")
    assert not ls.completion_running()
    completion = ls.supersede("file:///a.py")
    assert ls.completion_running()
    ls.finished("file:///a.py", completion)
    ls.finished(f"{KEY_PREFIX}hover:file:///a.py", hover)
    assert not ls.completion_running()
    # every finished request hands the idle trim its time; the trim never runs while busy
    assert ls.trimmer._busy == ls.busy and time.monotonic() - ls.trimmer._last < 1


def test_background_work_waits_for_a_running_completion():
    import threading
    import time

    from slm_lsp.server import QUIET_S, SlmServer

    ls = SlmServer(factory=lambda settings: None)
    start = time.monotonic()
    ls.yield_to_completions(max_wait=5)  # no completion yet: no wait
    assert time.monotonic() - start < 0.05
    event = ls.supersede("file:///b.py")
    threading.Timer(0.3, ls.finished, args=("file:///b.py", event)).start()
    start = time.monotonic()
    ls.yield_to_completions(max_wait=5)  # while it runs, then the quiet time after it
    waited = time.monotonic() - start
    assert 0.3 + QUIET_S - 0.05 <= waited < 0.3 + QUIET_S + 1
    start = time.monotonic()
    ls.yield_to_completions(max_wait=5)  # quiet for long enough: no wait
    assert time.monotonic() - start < 0.05
    hover = ls.supersede("slm-explain:hover:file:///b.py")
    ls.finished("slm-explain:hover:file:///b.py", hover)
    ls.yield_to_completions(max_wait=5)  # an explanation is not a completion
    assert time.monotonic() - start < 0.05
    event = ls.supersede("file:///b.py")
    ls.finished("file:///b.py", event)
    start = time.monotonic()
    stop = threading.Event()
    threading.Timer(0.1, stop.set).start()
    ls.yield_to_completions(max_wait=5, cancel=stop)  # a cancelled wait ends at once
    assert time.monotonic() - start < 0.3
    event = ls.supersede("file:///b.py")
    ls.finished("file:///b.py", event)
    start = time.monotonic()
    ls.yield_to_completions(max_wait=0.1)  # nor longer than max_wait
    assert time.monotonic() - start < 0.1 + (QUIET_S - 0.1) / 2


def test_code_action_kind_filter_and_selected_lines():
    assert _wanted(None, "refactor.rewrite") and _wanted(["refactor"], "refactor.rewrite")
    assert not _wanted(["source.organizeImports"], "refactor.rewrite")
    rng = types.Range(start=types.Position(line=3, character=0), end=types.Position(line=7, character=0))
    assert _selected_lines(rng) == (3, 6)
    rng.end.character = 2
    assert _selected_lines(rng) == (3, 7)


def test_footer_says_why_there_is_no_explanation():
    assert "cached" in _footer(Explanation("It works.", "cache"), "m")
    assert "still loading" in _footer(Explanation("", "none", problem="still loading"), "m")
    assert "not in this repository" in _footer(Explanation("", "model", removed=["x"]), "m")
    assert "time budget" in _footer(Explanation("", "model", timed_out=True), "m")
    cut = _footer(Explanation("It parses.", "model", 3200.0, timed_out=True), "m")
    assert cut.startswith("It parses.") and "3.2 s · cut short by the time budget" in cut
    assert "cut short" not in _footer(Explanation("It parses.", "model", 3200.0), "m")


def test_cli_explain_rejects_bad_input_before_loading_a_model(tmp_path, capsys):
    from slm_lsp.cli import main

    assert main(["explain", str(tmp_path / "missing.py"), "1", "1"]) == 2
    file = tmp_path / "m.py"
    file.write_text("x = 1\n")
    assert main(["explain", str(file), "9", "1", "--root", str(tmp_path)]) == 2
    assert "outside" in capsys.readouterr().err


def test_explanation_shown_as_document_or_message(tmp_path):
    import asyncio

    from slm_lsp.features.code_actions import _show

    class Client:
        def __init__(self, show_document: bool) -> None:
            window = types.WindowClientCapabilities(
                show_document=types.ShowDocumentClientCapabilities(support=show_document))
            self.client_capabilities = types.ClientCapabilities(window=window)
            self.messages: list[str] = []
            self.documents: list[str] = []

        async def window_show_document_async(self, params):
            self.documents.append(params.uri)
            return types.ShowDocumentResult(success=True)

        def window_show_message(self, params):
            self.messages.append(params.message)

    file = tmp_path / "e.md"
    rich, plain = Client(True), Client(False)
    assert asyncio.run(_show(rich, "T", "text", file)) == "document"
    assert rich.documents == [file.as_uri()] and not rich.messages
    assert asyncio.run(_show(plain, "T", "text", file)) == "message"
    assert plain.messages == ["T\n\ntext"] and not plain.documents
