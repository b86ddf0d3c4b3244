"""The engine's view of one cursor position, independent of the protocol."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CursorContext:
    """Text around the cursor of one document."""

    uri: str
    path: str | None
    """Workspace-relative path when known (shown to the model), else the file name."""
    language: str | None
    """A supported tree-sitter language name, or None for plain text."""
    prefix: str
    """Everything before the cursor."""
    suffix: str
    """Everything after the cursor."""
    line: int
    character: int
    version: int | None = None
    invoked: bool = False
    """True when the user asked explicitly (not an automatic trigger while typing)."""
    band: int | None = None
    """The document line where the prompt's text starts, when the engine knows it: every
    cursor of a band shares it, and retrieval answers them alike (see ``retrieval``)."""

    @property
    def line_before(self) -> str:
        """Text of the cursor line left of the cursor."""
        return self.prefix[self.prefix.rfind("\n") + 1:]

    @property
    def line_after(self) -> str:
        """Text of the cursor line right of the cursor."""
        end = self.suffix.find("\n")
        return self.suffix if end < 0 else self.suffix[:end]


def split_at(text: str, line: int, character: int) -> tuple[str, str]:
    """Split a document at a (line, UTF-16 character) position.

    Raises ``ValueError`` for a position outside the document, so a bad request
    gets a clear error instead of a suggestion for the wrong place. The document is
    never split into lines: a request in a file of millions of lines allocates only
    the two halves.
    """
    if line < 0:
        raise ValueError(f"line {line} is negative")
    start = line_start(text, line)
    if start < 0:
        raise ValueError(f"line {line} is outside the document (0..{text.count(chr(10))})")
    end = text.find("\n", start)
    col = utf16_to_index(text[start:] if end < 0 else text[start:end], character)
    return text[:start + col], text[start + col:]


LINE_BLOCK = 1 << 16
"""Characters whose line breaks are counted at once while looking for a line."""


def line_start(text: str, line: int) -> int:
    """Offset where 0-based ``line`` starts in ``text``, or -1 past its last line."""
    seen = pos = 0
    while line - seen > 0:
        if pos >= len(text):
            return -1
        end = min(len(text), pos + LINE_BLOCK)
        in_block = text.count("\n", pos, end)
        if seen + in_block < line:
            seen, pos = seen + in_block, end
            continue
        for _ in range(line - seen):
            pos = text.index("\n", pos) + 1
        return pos
    return pos


def utf16_to_index(line: str, character: int) -> int:
    """Index into ``line`` for an LSP UTF-16 column, clamped at the line end as LSP asks."""
    if character < 0:
        raise ValueError(f"character {character} is negative")
    units = 0
    for i, ch in enumerate(line):
        if units >= character:
            return i
        units += 2 if ord(ch) > 0xFFFF else 1
    return len(line)  # LSP: a column past the end means the end of the line
