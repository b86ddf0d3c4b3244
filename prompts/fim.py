"""Fill-in-the-middle prompt templates for the code model families we support.

A prompt is a list of segments: special tokens (by their text in the model's
vocabulary) and plain text. The backend turns special segments into single
token ids and tokenizes text segments without parsing special tokens, so code
that happens to contain ``<|fim_prefix|>`` cannot inject control tokens.

Layout, for the KV cache: everything stable comes first (repository context,
file path, text above the cursor); the parts that change per keystroke sit as
late as the template allows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class FimFamily:
    """The special tokens of one model family, as they appear in the vocabulary."""

    name: str
    prefix: str
    suffix: str
    middle: str
    order: Literal["psm", "spm"] = "psm"
    """psm: prefix, suffix, middle. spm: suffix first (Codestral's layout)."""
    repo_name: str | None = None
    file_sep: str | None = None
    extra_stops: tuple[str, ...] = ()


FAMILIES: tuple[FimFamily, ...] = (
    FimFamily("qwen2.5-coder", "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>",
              repo_name="<|repo_name|>", file_sep="<|file_sep|>",
              extra_stops=("<|fim_pad|>", "<|endoftext|>", "<|im_end|>")),
    FimFamily("starcoder", "<fim_prefix>", "<fim_suffix>", "<fim_middle>",
              repo_name="<repo_name>", file_sep="<file_sep>",
              extra_stops=("<fim_pad>", "<|endoftext|>")),
    FimFamily("deepseek-coder", "<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>",
              extra_stops=("<|EOT|>", "<｜end▁of▁sentence｜>")),
    FimFamily("codellama", "▁<PRE>", "▁<SUF>", "▁<MID>", extra_stops=("▁<EOT>",)),
    FimFamily("codestral", "[PREFIX]", "[SUFFIX]", "[MIDDLE]", order="spm"),
)


@dataclass(frozen=True)
class Segment:
    """A piece of a prompt: a special token (by vocabulary text) or plain text."""

    text: str
    special: bool = False


def special(text: str) -> Segment:
    """A special-token segment."""
    return Segment(text, True)


def detect_family(
    lookup: Callable[[str], int | None],
    metadata_ids: dict[str, int] | None = None,
) -> FimFamily | None:
    """The family whose prefix, suffix and middle tokens all exist in the vocabulary.

    ``lookup`` maps a token's text to its id when the text is one special token
    of the model, else None. ``metadata_ids`` may carry the GGUF's own
    ``fim_pre``/``fim_suf``/``fim_mid`` ids; when given, the family must match
    them, which guards against a vocabulary that merely contains look-alikes.
    """
    for family in FAMILIES:
        ids = [lookup(t) for t in (family.prefix, family.suffix, family.middle)]
        if any(i is None for i in ids):
            continue
        if metadata_ids:
            wanted = [metadata_ids.get(k) for k in ("fim_pre", "fim_suf", "fim_mid")]
            if all(w is not None and w >= 0 for w in wanted) and wanted != ids:
                continue
        return family
    return None


@dataclass(frozen=True)
class ContextFile:
    """A retrieved piece of another file, shown to the model before the current file."""

    path: str
    text: str


def build_fim_prompt(
    family: FimFamily,
    prefix: str,
    suffix: str,
    *,
    path: str | None = None,
    repo_name: str | None = None,
    context: Sequence[ContextFile] = (),
    open_end: bool = False,
) -> list[Segment]:
    """The FIM prompt for one cursor position.

    With ``open_end`` the prompt stops after the suffix text, before the middle
    token: what a region warm-up evaluates and saves, for requests near that
    cursor to start from. Only prefix-first (psm) families have such a prompt.

    Repository-level tokens are used where the family has them: the retrieved
    files come first, each after a file separator, then the current file's
    path, so they stay identical (and cached) while the user types below them.
    Families without them get the context as comments-free plain text header.
    """
    segments: list[Segment] = []
    if family.file_sep and (context or path):
        if family.repo_name and repo_name:
            segments += [special(family.repo_name), Segment(f"{repo_name}\n")]
        for item in context:
            text = item.text if item.text.endswith("\n") else item.text + "\n"
            segments += [special(family.file_sep), Segment(f"{item.path}\n{text}")]
        if path:
            segments += [special(family.file_sep), Segment(f"{path}\n")]
    elif context:
        header = "".join(
            f"# {item.path}\n{item.text.rstrip()}\n\n" for item in context
        )
        prefix = header + prefix
    if open_end and family.order != "psm":
        raise ValueError(f"{family.name} puts the suffix first; its prompts share no prefix")
    if family.order == "spm":
        segments += [special(family.suffix), Segment(suffix), special(family.prefix), Segment(prefix)]
        return [s for s in segments if s.special or s.text]
    segments += [
        special(family.prefix), Segment(prefix),
        special(family.suffix), Segment(suffix),
    ]
    if not open_end:
        segments.append(special(family.middle))
    return [s for s in segments if s.special or s.text]


def stop_texts(family: FimFamily) -> tuple[str, ...]:
    """Every special token text of the family: none may ever reach the editor."""
    texts = [family.prefix, family.suffix, family.middle, *family.extra_stops]
    texts += [t for t in (family.repo_name, family.file_sep) if t]
    return tuple(texts)


def all_special_texts() -> tuple[str, ...]:
    """Special token texts of every known family (for a last-line scrub)."""
    seen: dict[str, None] = {}
    for family in FAMILIES:
        for text in stop_texts(family):
            seen[text] = None
    return tuple(seen)


PREFIX_ALIGN = 64
"""Most lines between the places where a prefix may start (see ``prefix_align``)."""


def prefix_align(budget: int) -> int:
    """Lines between the places where a prefix of ``budget`` tokens may start: about half
    the lines the budget holds (code runs near ten tokens a line), at most ``PREFIX_ALIGN``
    and at least 8. A step as long as the window would leave a cursor just past a step
    with almost no text before it."""
    return max(8, min(PREFIX_ALIGN, budget // 24))


WINDOW_CHARS_PER_TOKEN = 16
"""Characters per token assumed when a long prefix or suffix is first narrowed to a window
(code averages about 4): a window that still holds more tokens than the budget contains
the cut, so the result is the same as from the whole text, at a cost bounded by the
budget rather than by the file's size. Otherwise the whole text is used."""


def _tail_window(text: str, budget: int, align: int) -> str:
    """The end of ``text`` from an ``align``-multiple line (counted from the start of
    ``text``) at least ``budget * WINDOW_CHARS_PER_TOKEN`` characters from its end; ``text``
    itself when it is not longer than that."""
    start = len(text) - budget * WINDOW_CHARS_PER_TOKEN
    if start <= 0:
        return text
    row = text.count("\n", 0, start)  # the line holding text[start]
    aligned = row - row % align
    if aligned == 0:
        return text
    pos = start
    for _ in range(row - aligned + 1):  # back to the newline that ends line aligned - 1
        pos = text.rfind("\n", 0, pos)
    return text[pos + 1:]


def fit_prefix(text: str, budget: int, count: Callable[[str], int],
               align: int | None = None) -> str:
    """The tail of ``text`` within ``budget`` tokens, cut at a line boundary.

    The cut moves in steps of ``align`` lines (default ``prefix_align(budget)``) so
    that it stays put while the user types further down: the start of the prompt, and
    so the model's cached state, does not change on every new line.
    """
    if align is None:
        align = prefix_align(budget)
    window = _tail_window(text, budget, align)
    if window is not text and count(window) > budget:
        text = window  # the cut is inside it: what lies before is neither split nor counted
    elif count(text) <= budget:
        return text
    lines = text.splitlines(keepends=True)
    # Candidate cuts: every ``align`` lines, the last line at the latest. Fewer lines
    # never take more tokens, so the earliest cut that fits is found by bisection
    # (a long file would otherwise be re-tokenized once per candidate).
    starts = [min(k * align, len(lines) - 1) for k in range(1, (len(lines) - 1) // align + 2)]
    lo, hi = 0, len(starts)
    while lo < hi:
        mid = (lo + hi) // 2
        if count("".join(lines[starts[mid]:])) <= budget:
            hi = mid
        else:
            lo = mid + 1
    if lo < len(starts) and len(lines) > 1:
        return "".join(lines[starts[lo]:])
    # A single huge last line: keep its end by characters.
    tail = lines[-1] if lines else text
    while tail and count(tail) > budget:
        tail = tail[len(tail) // 4 or 1:]
    return tail


def fit_suffix(
    text: str, budget: int, count: Callable[[str], int], *, first_line: int = 0, align: int = 16
) -> str:
    """The head of ``text`` within ``budget`` tokens, cut at a line boundary.

    ``first_line`` is the document line the suffix starts on. The cut is put on
    a document line that is a multiple of ``align`` (or the end of the file), so
    that it stays where it is while the cursor moves within a region: the end of
    the prompt is then the same as in the cached one and can be kept.
    """
    if budget <= 0:
        return ""
    end = text.find("\n", budget * WINDOW_CHARS_PER_TOKEN) + 1
    if end and count(text[:end]) > budget:
        text = text[:end]  # whole lines that do not fit: the cut is inside them
    elif count(text) <= budget:
        return text
    lines = text.splitlines(keepends=True)
    lo, hi = 0, len(lines)
    while lo < hi:  # largest number of whole lines that fits
        mid = (lo + hi + 1) // 2
        if count("".join(lines[:mid])) <= budget:
            lo = mid
        else:
            hi = mid - 1
    if lo == 0 and lines:  # the first line alone is too long: keep its start
        first = lines[0]
        while first and count(first) > budget:
            first = first[: len(first) * 3 // 4]
        return first
    aligned = lo - (first_line + lo) % align
    return "".join(lines[: aligned if 2 * aligned >= lo else lo])


def keep_suffix_end(text: str, fresh: str, budget: int, count: Callable[[str], int], *,
                    first_line: int, previous_end: int | None) -> str:
    """The suffix ending where the previous one ended, when that is still reasonable.

    ``fresh`` is ``fit_suffix``'s choice. After the cursor moved down a few
    lines, the previous end is usually still within the budget: keeping it
    keeps the end of the prompt identical to the cached one, so nothing there
    needs evaluating. It is kept while it has at least half of ``budget`` in
    tokens and fits it.
    ``previous_end`` and the result's end are document lines (the suffix holds
    lines up to, not including, that line).
    """
    if previous_end is None or previous_end <= first_line:
        return fresh
    want = previous_end - first_line  # newlines to include
    cut = -1
    for _ in range(want):
        cut = text.find("\n", cut + 1)
        if cut < 0:
            return fresh
    kept = text[:cut + 1]
    if kept == fresh or not budget <= 2 * count(kept) <= 2 * budget:
        return fresh
    return kept


def suffix_end(suffix: str, first_line: int) -> int:
    """The document line just after a suffix that starts on ``first_line``."""
    return first_line + suffix.count("\n")
