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
    gets a clear error instead of a suggestion for the wrong place.
    """
    lines = text.split("\n")
    if line < 0 or line >= len(lines):
        raise ValueError(f"line {line} is outside the document (0..{len(lines) - 1})")
    current = lines[line]
    col = utf16_to_index(current, character)
    offset = sum(len(x) + 1 for x in lines[:line]) + col
    return text[:offset], text[offset:]


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
