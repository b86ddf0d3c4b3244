"""Checking and cleaning what the model wrote: sentences naming code that exists
nowhere are dropped, output is cut at the right place.
"""

from __future__ import annotations

import builtins
import keyword
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from prompts.fim import all_special_texts

from ..symbols import WORD_RE

log = logging.getLogger(__name__)


BUILTINS = frozenset(dir(builtins)) | frozenset(keyword.kwlist) | frozenset({
    "self", "cls", "this", "super", "true", "false", "null", "nil", "undefined", "None",
    "void", "int", "float", "double", "char", "bool", "boolean", "string", "String", "str",
    "Object", "Array", "Map", "Set", "Promise", "Error", "console", "async", "await",
    "fn", "impl", "struct", "enum", "trait", "mut", "func", "var", "let", "const", "new",
    "return", "static", "public", "private", "protected", "def", "class", "function",
    "dict", "list", "tuple", "set", "Result", "Option", "Some", "Ok", "Err", "Vec",
    "__init__", "__call__", "__enter__", "__exit__", "__iter__", "__next__", "__repr__",
    "__str__", "__eq__", "__hash__", "__len__", "__getitem__", "__setitem__", "__name__",
})
_ABBREVIATIONS = frozenset({"e.g", "i.e", "etc", "vs", "a.k.a"})
_SPAN_RE = re.compile(r"`([^`\n]+)`")
_QUOTED_RE = re.compile(r"'[^']*'|\"[^\"]*\"")
_CODE_LIKE_RE = re.compile(
    r"\b[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+(?:\(\))?"  # Foo.bar, os.path.join()
    r"|\b[A-Za-z_]\w*\([^()\s]*\)"  # foo(), foo(x)
    r"|\b_*[a-z][a-z0-9]*_[a-z0-9_]+\b"  # snake_case
    r"|\b_*[a-z]+[A-Z]\w*"  # camelCase
    r"|\b[A-Z][a-z0-9]+[A-Z]\w*"  # PascalCase with an inner capital
)
_SENTENCE_RE = re.compile(r"(?<=[.!?])\s+(?=[A-Z`*_\"'(\[])|\n+")


@dataclass
class Guarded:
    """The explanation after the guard, and what it removed."""

    text: str
    removed: list[str] = field(default_factory=list)


def code_names(sentence: str) -> list[str]:
    """Identifiers the sentence names as code (backticked spans and code-like tokens)."""
    names: list[str] = []
    for span in _SPAN_RE.findall(sentence):
        names += WORD_RE.findall(_QUOTED_RE.sub("", span))
    prose = _SPAN_RE.sub(" ", sentence)
    for token in _CODE_LIKE_RE.findall(prose):
        if token.lower().rstrip(".") in _ABBREVIATIONS:
            continue
        names += WORD_RE.findall(token.split("(", 1)[0] if "(" in token and not
                                 token.endswith("()") else token)
    return [n for n in names if not n.isdigit()]


def guard(text: str, known: Callable[[str], bool]) -> Guarded:
    """Drop every sentence that names code not in ``known`` (context or repository)."""
    kept: list[str] = []
    removed: list[str] = []
    for sentence in _SENTENCE_RE.split(text):
        if not sentence.strip():
            continue
        unknown = [n for n in code_names(sentence) if n not in BUILTINS and not known(n)]
        if unknown:
            removed += unknown
            log.debug("guard dropped %r (unknown %s)", sentence, unknown)
        else:
            kept.append(sentence.strip())
    return Guarded(" ".join(kept), removed)


# -- cleaning model output ---------------------------------------------------------------

_SPECIALS = all_special_texts() + ("<|im_start|>", "<|im_end|>", "<|endoftext|>")


def clean_explanation(text: str, *, complete: bool = True, max_sentences: int = 5) -> str:
    """Prose only: no fences, headings or special tokens; whole sentences, a few of them."""
    for special in _SPECIALS:
        text = text.replace(special, "")
    text = re.sub(r"```.*?(```|\Z)", " ", text, flags=re.S)
    text = re.sub(r"^\s*#+\s*", "", text, flags=re.M)
    text = re.sub(r"^\s*(?:[-*]|\d+\.)\s+", "", text, flags=re.M)
    text = " ".join(text.split())
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", text) if s]
    if not complete and sentences and not sentences[-1].endswith((".", "!", "?", ":")):
        sentences = sentences[:-1]  # cut off mid-sentence by the time budget
    return " ".join(sentences[:max_sentences]).strip()


_SENTENCE_END_RE = re.compile(r"(?<!\be\.g)(?<!\bi\.e)[.!?](?=\s)")
SENTENCES = {"symbol": 3, "selection": 5, "docstring": 1}
"""Generation stops after this many sentences per task (short answers come back fast)."""


class SentenceStop:
    """Stop at a code fence, a run of blank lines, or when the generation budget is spent.

    The budget counts from the first generated token, so a slow prompt evaluation
    (a busy machine) still leaves time for a sentence; the request's own timeout
    bounds the whole.
    """

    def __init__(self, budget_s: float | None, max_sentences: int = 0) -> None:
        self.budget_s = budget_s
        self.max_sentences = max_sentences
        self.started: float | None = None
        self.timed_out = False

    def __call__(self, text: str) -> int | None:
        for marker in ("\n```", "\n\n\n", "<|"):
            at = text.find(marker)
            if at >= 0 and text[:at].strip():
                return at
        if self.max_sentences:  # a sentence has ended once the token after its stop came
            ends = [m.end() for m in _SENTENCE_END_RE.finditer(text)]
            if len(ends) >= self.max_sentences:
                return ends[self.max_sentences - 1]
        now = time.monotonic()
        self.started = self.started or now
        if self.budget_s is not None and now - self.started > self.budget_s:
            self.timed_out = True
            return len(text)
        return None
