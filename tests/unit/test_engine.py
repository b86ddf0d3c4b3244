"""The completion engine with a scripted backend: prompt, cache, cancellation, errors."""

from __future__ import annotations

import threading

import pytest

from prompts.fim import FAMILIES, ContextFile
from slm_lsp.backends.base import BackendError, Cancelled
from slm_lsp.backends.fake import FakeBackend
from slm_lsp.context import CursorContext
from slm_lsp.engine import CompletionEngine
from slm_lsp.settings import CompletionSettings


def ctx_at(source: str) -> CursorContext:
    prefix, suffix = source.split("|")
    line = prefix.count("\n")
    return CursorContext("file:///w/a.py", "a.py", "python", prefix, suffix, line,
                         len(prefix) - (prefix.rfind("\n") + 1))


def test_prompt_uses_fim_tokens_and_path_and_returns_cleaned_text():
    backend = FakeBackend("total + 1)\nmore")
    engine = CompletionEngine(backend, CompletionSettings())
    out = engine.complete(ctx_at("total = 0\nprint(|)\n"))
    assert out.text == "total + 1" and out.source == "model"
    prompt = backend.prompts[-1]
    assert prompt.index("a.py") < prompt.index("<|fim_prefix|>total = 0\nprint(")
    assert prompt.endswith("<|fim_suffix|>)\n<|fim_middle|>")


def test_model_without_fim_is_refused_with_a_clear_message():
    with pytest.raises(BackendError, match="fill-in-the-middle"):
        CompletionEngine(FakeBackend("x", fim=None), CompletionSettings())


def test_same_position_is_served_from_cache():
    backend = FakeBackend("value")
    engine = CompletionEngine(backend, CompletionSettings())
    ctx = ctx_at("x = |\n")
    assert engine.complete(ctx).source == "model"
    again = engine.complete(ctx)
    assert again.source == "cache" and again.text == "value"
    assert len(backend.prompts) == 1


def test_the_result_cache_keeps_no_copy_of_the_document():
    import tracemalloc

    from slm_lsp.engine import ResultCache

    def place(n: int, line: str = "x = 1\n") -> tuple[str, str]:
        """A cursor in a 200 kB document, with ``n`` typed on its line."""
        return line * 16_000 + f"v{n}", f" = {n}\n" + line * 16_000

    cache = ResultCache(size=64)
    tracemalloc.start()
    try:
        for n in range(64):
            cache.put(*place(n), "y = 2", None)
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert held < 1 << 20, held  # the texts would be 12.8 MB
    assert cache.get(*place(63)) is not None
    assert cache.get(*place(63, "x = 2\n")) is None  # same lengths, other text
    assert cache.get(place(63)[0], place(63, "x = 2\n")[1]) is None


def test_typing_along_a_suggestion_is_served_without_the_model():
    backend = FakeBackend("compute(a, b)")
    engine = CompletionEngine(backend, CompletionSettings())
    engine.complete(ctx_at("x = |\n"))
    typed = engine.complete(ctx_at("x = comp|\n"))
    assert typed.source == "typed-along" and typed.text == "ute(a, b)"
    assert len(backend.prompts) == 1
    # Typing something else asks the model again.
    engine.complete(ctx_at("x = q|\n"))
    assert len(backend.prompts) == 2


def test_cancel_stops_generation():
    backend = FakeBackend("a" * 40, delay=0.05)
    engine = CompletionEngine(backend, CompletionSettings())
    cancel = threading.Event()
    threading.Timer(0.1, cancel.set).start()
    with pytest.raises(Cancelled):
        engine.complete(ctx_at("x = |\n"), cancel)


def test_retrieved_context_goes_before_the_current_file():
    backend = FakeBackend("1")
    seen = []

    def retriever(ctx, budget):
        seen.append(budget)
        return [ContextFile("lib/util.py", "def helper(): ...")]

    engine = CompletionEngine(backend, CompletionSettings(), retriever=retriever, context_tokens=300)
    engine.complete(ctx_at("x = |\n"))
    prompt = backend.prompts[-1]
    assert seen == [300]
    assert prompt.index("lib/util.py") < prompt.index("a.py") < prompt.index("<|fim_prefix|>")


def test_failing_retriever_does_not_lose_the_completion():
    def broken(ctx, budget):
        raise RuntimeError("index corrupt")

    engine = CompletionEngine(FakeBackend("42"), CompletionSettings(), retriever=broken,
                              context_tokens=100)
    assert engine.complete(ctx_at("x = |\n")).text == "42"


def test_budgets_shrink_to_fit_the_context_window():
    engine = CompletionEngine(FakeBackend("1"), CompletionSettings(max_prefix_tokens=4000,
                              max_suffix_tokens=4000), n_ctx=2048, context_tokens=1000)
    pre, suf, ctx = engine._budgets()
    assert pre + suf + ctx + engine.settings.max_tokens <= 2048


def test_every_family_builds_a_prompt():
    for family in FAMILIES:
        backend = FakeBackend("z", fim=family)
        assert CompletionEngine(backend, CompletionSettings()).complete(ctx_at("y = |\n")).text == "z"


@pytest.mark.parametrize(("before", "answer", "healed", "prompt_prefix", "shown"), [
    # a partly typed word is regenerated, not left in the prompt
    ("x = comp|\n", " compute(a, b)", " comp", "x =", "ute(a, b)"),
    # a cursor at the start of a line: its line break only, never the word above
    ("x = True\n|\n", "y = 2", "\n", "x = True", "y = 2"),
    # the indentation of a new line, with its line break
    ("def f():\n    |\n", "return 1", "\n    ", "def f():", "return 1"),
])
def test_the_healed_text_is_forced_and_left_out_of_the_prompt(
        before: str, answer: str, healed: str, prompt_prefix: str, shown: str) -> None:
    backend = FakeBackend(answer)
    out = CompletionEngine(backend, CompletionSettings()).complete(ctx_at(before))
    assert backend.forced == [healed]
    assert f"<|fim_prefix|>{prompt_prefix}<|fim_suffix|>" in backend.prompts[-1]
    assert out.text == shown


def test_heal_text_covers_the_word_and_the_blanks_before_it():
    from slm_lsp.engine import heal_text

    assert heal_text("    self.comp") == "comp"
    assert heal_text("x = ") == " "
    assert heal_text("x = comp") == " comp"
    assert heal_text("foo(") == ""
    assert heal_text("value_2") == "value_2"
    assert heal_text("if x:\n        ret") == "\n        ret"
    assert heal_text("if x:\r\n\t") == "\r\n\t"
    assert heal_text("a\n\n") == "\n"
    assert heal_text("import os\n") == "\n"  # the line break only, never the word above it
    assert heal_text("x = True\r\n") == "\r\n"
    assert heal_text("") == ""
    assert heal_text(" " * 5000) == " " * 200  # bounded, however long the blank run


def test_only_the_last_word_or_blank_of_the_healed_text_is_left_to_the_model():
    from slm_lsp.backends.healing import heal_split

    assert heal_split("\n        ") == ("\n       ", " ")  # the blank before the next word
    assert heal_split("\n        ret") == ("\n       ", " ret")
    assert heal_split(" comp") == ("", " comp")
    assert heal_split("value_2") == ("", "value_2")
    assert heal_split("\r\n\t") == ("\r\n", "\t")
    assert heal_split("\n\n") == ("\n", "\n")  # the end of the text, not of a line
    assert heal_split("") == ("", "")
    for text in ("\n    x", "  ", "\t\tfoo_bar", "a.b"):
        head, last = heal_split(text)
        assert head + last == text and last


def test_token_healing_can_be_switched_off():
    backend = FakeBackend("ute(a)")
    engine = CompletionEngine(backend, CompletionSettings(token_healing=False))
    assert engine.complete(ctx_at("x = comp|\n")).text == "ute(a)"
    assert backend.forced == [""] and "x = comp<|fim_suffix|>" in backend.prompts[-1]


def test_an_empty_line_that_got_the_next_line_again_asks_for_the_next_best_answer():
    # The small model's commonest miss on an emptied line: it writes the line below.
    backend = FakeBackend("level = 0", second="if parent is None:")
    engine = CompletionEngine(backend, CompletionSettings())
    out = engine.complete(ctx_at("if level is None:\n    |\n        level = 0\n"))
    assert out.text == "if parent is None:"
    assert backend.avoided == ["", "level = 0"]
    assert len(backend.prompts) == 2 and backend.prompts[0] == backend.prompts[1]


def test_a_line_break_or_an_end_on_an_empty_line_is_asked_again_and_may_stay_empty():
    backend = FakeBackend("\n", second="\n")
    engine = CompletionEngine(backend, CompletionSettings())
    assert engine.complete(ctx_at("x = 1\n|\ny = 2\n")).text == ""
    assert backend.avoided == ["", "\n"]


def test_no_second_request_where_an_empty_answer_is_fine_or_the_first_is_used():
    backend = FakeBackend("", second="junk")
    engine = CompletionEngine(backend, CompletionSettings())
    assert engine.complete(ctx_at("x = compute(|)\n")).text == ""  # mid-line: nothing to add
    useful = FakeBackend("y = 2", second="junk")
    assert CompletionEngine(useful, CompletionSettings()).complete(
        ctx_at("x = 1\n|\n")).text == "y = 2"
    assert backend.avoided == [""] and useful.avoided == [""]
