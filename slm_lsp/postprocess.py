"""Shape decisions before generation and clean-up after it.

Before: is this a place for one line or for a block (decided from the syntax
tree), and when must generation stop. After: no special tokens, no text the
document already has right of or below the cursor, no degenerate repeats.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice

from indexer.languages import get_parser
from prompts.fim import all_special_texts

from .context import CursorContext

# Tokens after which a new block body (or an argument list) starts.
_OPENERS = {"{", "(", "[", ":"}
# A ':' opens a block only in these constructs (not in a dict, slice, lambda, type hint).
_COLON_PARENTS_SUFFIXES = ("_statement", "_definition", "_clause", "ERROR", "case_pattern")
_COLON_PARENTS = {"module", "block", "function_definition", "class_definition",
                  "decorated_definition", "match_statement", "case_clause"}
_SPECIALS = all_special_texts()


@dataclass(frozen=True)
class Shape:
    """How much text a suggestion at this cursor may have."""

    multiline: bool
    max_lines: int
    base_indent: int
    """Indentation of the block header; a generated line at or left of it ends the block."""


def indent_of(line: str) -> int:
    """Width of a line's leading white space (a tab counts as 4)."""
    width = 0
    for ch in line:
        if ch == " ":
            width += 1
        elif ch == "\t":
            width += 4
        else:
            break
    return width


def _header_line(ctx: CursorContext) -> tuple[int, str] | None:
    """The line whose end could open a block for the cursor: (row, text)."""
    before = ctx.line_before
    if before.strip():
        return (ctx.line, before) if not ctx.line_after.strip() else None
    text, row = ctx.prefix, ctx.line - 1
    end = text.rfind("\n")  # lines above the cursor's, last first; the prefix is not split
    while end >= 0:
        start = text.rfind("\n", 0, end) + 1
        if text[start:end].strip():
            return row, text[start:end]
        end, row = start - 1, row - 1
    return None


def _following_lines(suffix: str) -> Iterator[str]:
    """The lines after the cursor line, one at a time (the suffix is not split)."""
    pos = suffix.find("\n")
    while pos >= 0:
        end = suffix.find("\n", pos + 1)
        yield suffix[pos + 1:] if end < 0 else suffix[pos + 1:end]
        pos = end


def _next_code_line(suffix: str) -> str | None:
    return next((text for text in _following_lines(suffix) if text.strip()), None)


def opens_block(ctx: CursorContext) -> tuple[bool, int]:
    """Whether the cursor starts an empty block body, and the header's indentation.

    The last token of the header line is looked up in the tree-sitter parse of
    the whole document, so a ``:`` or ``{`` inside a string or comment does not
    count, and a Python ``:`` counts only when it ends a compound statement.
    """
    header = _header_line(ctx)
    if header is None:
        return False, 0
    row, text = header
    base = indent_of(text)
    following = _next_code_line(ctx.suffix)
    if following is not None and indent_of(following) > base and \
            following.strip() not in ("}", ")", "]"):
        return False, base  # the block already has a body
    parser = get_parser(ctx.language)
    stripped = text.rstrip()
    if not stripped or stripped[-1] not in _OPENERS:
        return False, base
    if parser is None:
        return stripped[-1] in "{([", base  # no grammar: brackets only
    source = (ctx.prefix + ctx.suffix).encode("utf-8")
    tree = parser.parse(source)
    col = len(stripped[:-1].encode("utf-8"))
    node = tree.root_node.descendant_for_point_range((row, col), (row, col + 1))
    if node is None or node.type != stripped[-1]:
        return False, base  # inside a string, comment or other token
    if node.type == ":":
        parent = node.parent
        ptype = parent.type if parent is not None else ""
        if not (ptype in _COLON_PARENTS or ptype.endswith(_COLON_PARENTS_SUFFIXES)):
            return False, base
    return True, base


def decide_shape(ctx: CursorContext, max_lines: int) -> Shape:
    """One line (rest of the line only when mid-line), or a block where one opens."""
    if ctx.line_after.strip():
        return Shape(False, 1, indent_of(ctx.line_before))
    multiline, base = opens_block(ctx)
    return Shape(multiline, max_lines if multiline else 1, base)


def stop_rule(ctx: CursorContext, shape: Shape) -> StopAt:
    """The generation stop rule for this shape."""
    return StopAt(shape, first_line_open=bool(ctx.line_before.strip()))


@dataclass(frozen=True)
class StopAt:
    """Cuts generated text where the suggestion must end (see ``__call__``)."""

    shape: Shape
    first_line_open: bool

    def __call__(self, text: str) -> int | None:
        for special in _SPECIALS:
            at = text.find(special)
            if at >= 0:
                return at
        if not self.shape.multiline:
            at = text.find("\n")
            return at if at >= 0 else None
        # Line 0 continues the cursor line; with the cursor at the end of a header
        # line the body starts at line 1, else line 0 is already a body line.
        first_body = 1 if self.first_line_open else 0
        pos = 0
        body = 0
        lines = text.split("\n")
        for i, line in enumerate(lines[:-1]):  # complete lines only
            if i >= 1 and line.strip() and indent_of(line) <= self.shape.base_indent:
                return max(pos - 1, 0)  # the block ended: cut before this line
            if i >= first_body:
                body += 1
            if body >= self.shape.max_lines:
                return pos + len(line)
            pos += len(line) + 1
        return None


def _trim_line_overlap(text: str, rest: str) -> str:
    """Drop the end of a one-line suggestion that the line already has right of the cursor."""
    rest = rest.rstrip()
    if not rest:
        return text
    if text.rstrip().endswith(rest):
        return text.rstrip()[: -len(rest)]
    for k in range(len(rest), 0, -1):
        if text.endswith(rest[:k]):
            return text[:-k]
    return text


def _trim_suffix_repeat(text: str, suffix: str) -> str:
    """Drop trailing suggestion lines that repeat the lines right below the cursor."""
    lines = text.split("\n")
    below = list(islice((ln.strip() for ln in _following_lines(suffix) if ln.strip()), len(lines)))
    if not below:
        return text
    # Whole-suggestion repeat of what follows: nothing to add.
    meaningful = [ln.strip() for ln in lines if ln.strip()]
    if meaningful and meaningful == below[: len(meaningful)]:
        return ""
    # The suggestion runs into the existing code: cut where it starts repeating it.
    for i in range(1, len(lines)):
        tail = [ln.strip() for ln in lines[i:] if ln.strip()]
        if tail and tail == below[: len(tail)]:
            return "\n".join(lines[:i])
    return text


def clean(text: str, ctx: CursorContext, shape: Shape) -> str:
    """The suggestion as the editor should show it, or "" for nothing worth showing."""
    for special in _SPECIALS:
        at = text.find(special)
        if at >= 0:
            text = text[:at]
    if not shape.multiline:
        newline = text.find("\n")
        if newline == 0 and not ctx.line_before.strip():
            text = ""
        elif newline >= 0:
            text = text[:newline]
        text = _trim_line_overlap(text, ctx.line_after)
        if not ctx.line_after.strip():
            text = text.rstrip()
        repeat_of = ctx.line_before + text
        below = _next_code_line(ctx.suffix) if ctx.line_after == "" else None
        if below is not None and repeat_of.strip() == below.strip() and not ctx.line_before.strip():
            return ""
    else:
        text = _trim_suffix_repeat(text.rstrip(), ctx.suffix)
        text = text.rstrip()
    return text if text.strip() else ""
