"""Asking the local model for its next-best answer (``avoid``): which first tokens are skipped."""

from __future__ import annotations

from typing import Any

from slm_lsp.backends.llama import _Run

END = 0
VOCAB = {END: b"", 1: b"level", 2: b" level", 3: b"if", 4: b"\n", 5: b"  \n", 6: b"    ", 7: b"le",
         8: b"levels", 9: b"  "}


class Vocab:
    """The two things ``_Run`` asks of a backend: token bytes and end tokens."""

    def piece(self, tok: int) -> bytes:
        return VOCAB[tok]

    def is_end(self, tok: int) -> bool:
        return tok == END


def run(avoid: str, need: bytes = b"") -> _Run:
    backend: Any = Vocab()
    return _Run(backend, need, None, 16, avoid)


def test_without_avoid_every_token_is_greedy_and_nothing_is_checked() -> None:
    assert not run("").avoiding()


def test_the_first_word_of_the_avoided_line_an_end_and_a_line_break_are_skipped() -> None:
    r = run("level = 0")
    assert r.avoiding()
    assert [tok for tok in VOCAB if not r.allowed(tok)] == [END, 1, 2, 4, 5, 7]
    assert r.allowed(3) and r.allowed(8)  # another word, or a longer one, is a new answer


def test_blanks_keep_the_check_on_until_text_comes() -> None:
    r = run("level = 0")
    assert r.accept(9)  # two spaces: still nothing written
    assert r.avoiding() and not r.allowed(1)
    assert r.accept(3)
    assert not r.avoiding()


def test_healed_bytes_are_not_counted_as_the_answer() -> None:
    r = run("level = 0", need=b"    ")
    assert r.accept(6)  # the forced indentation
    assert r.avoiding() and not r.allowed(2) and r.allowed(3)


def test_an_end_or_line_break_alone_is_avoided_with_any_word_allowed() -> None:
    r = run("\n")
    assert not r.allowed(END) and not r.allowed(4) and r.allowed(1) and r.allowed(3)
