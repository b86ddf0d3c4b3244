"""The real model on an emptied line where its greedy answer is the line below it."""

from __future__ import annotations

from pathlib import Path

import pytest

from slm_lsp.backends.llama import LlamaBackend
from slm_lsp.engine import CompletionEngine
from slm_lsp.settings import CompletionSettings
from tests.e2e.conftest import model_installed, real_file  # noqa: F401 - fixture
from tests.model.test_kv_reuse import indent, jinja2_at, prompt_at

ROW = 37
"""jinja2/idtracking.py, `if parent is None:` in `Symbols.__init__` (0-based); the line below
is `level = 0`, which the default model writes instead."""


@pytest.fixture(scope="module")
def backend(model_installed: Path) -> LlamaBackend:  # noqa: F811
    return LlamaBackend(model_installed, n_threads=2, splice=True)


def test_asked_to_avoid_its_answer_the_model_gives_its_next_best_one(backend: LlamaBackend) -> None:
    engine = CompletionEngine(backend, CompletionSettings())
    text = real_file().with_name("idtracking.py").read_text()
    prompt = prompt_at(engine, text, ROW)
    greedy = backend.generate(prompt, max_tokens=12)
    assert greedy.text.strip().split("\n")[0] == "level = 0"  # the line below: nothing to show
    other = backend.generate(prompt, max_tokens=12, avoid=greedy.text)
    assert other.text.strip() and not other.text.strip().startswith("level")
    assert other.n_reused >= other.n_prompt - 1  # only the last token is read again (its logits)


def test_the_engine_shows_a_line_where_the_greedy_answer_repeated_the_next(
        backend: LlamaBackend) -> None:
    rows = real_file().with_name("idtracking.py").read_text().split("\n")
    col = indent(rows[ROW])
    rows[ROW] = rows[ROW][:col]
    out = CompletionEngine(backend, CompletionSettings()).complete(jinja2_at(rows, ROW, col))
    assert out.text.strip() and out.text.strip() != rows[ROW + 1].strip()
