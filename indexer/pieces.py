"""Line ranges of a file ("pieces") sized for chunks: windows, merging, splitting.

The chunker turns a syntax tree into pieces; the rules here make them fit
`ChunkLimits`: long text becomes overlapping windows, small neighbours are
merged, a piece over the character limit is split.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class ChunkLimits:
    """Size rules for chunks, in lines and characters."""

    max_lines: int = 50
    max_chars: int = 2000
    overlap: int = 5
    merge_lines: int = 30
    merge_chars: int = 1200
    small_lines: int = 6
    text_window: int = 40


@dataclass
class Piece:
    """A line range (0-based rows, inclusive) with what it defines, before merging."""

    start: int
    end: int
    kind: str
    symbol: str | None
    is_definition: bool
    sealed: bool = False


def windows(start: int, end: int, kind: str, symbol: str | None, size: int,
             overlap: int) -> list[Piece]:
    """Rows `start`..`end` as evenly sized windows of at most `size` rows, overlapping."""
    rows = end - start + 1
    size = max(1, size)
    overlap = max(0, min(overlap, size - 1))
    count = max(1, math.ceil((rows - overlap) / (size - overlap)))
    length = min(size, math.ceil((rows + (count - 1) * overlap) / count))
    pieces: list[Piece] = []
    for i in range(count):
        first = min(start + i * (length - overlap), max(start, end - length + 1))
        last = end if i == count - 1 else min(end, first + length - 1)
        pieces.append(Piece(first, last, kind, symbol, kind not in ("text", "block")))
    return pieces


def fit_pieces(pieces: Iterable[Piece], limits: ChunkLimits, lengths: list[int]) -> list[Piece]:
    """Merge runs of small neighbouring pieces up to the merge size; split long ones by chars."""
    out: list[Piece] = []
    group: list[Piece] = []

    def flush() -> None:
        if group:
            out.append(_combine(group))
            group.clear()

    for piece in pieces:
        if piece.sealed or not _small(piece, limits):
            flush()
            out.extend(_split_chars(piece, limits, lengths))
            continue
        if group and not _fits(group[0].start, piece.end, limits, lengths):
            flush()
        group.append(piece)
    flush()
    return out


def _small(piece: Piece, limits: ChunkLimits) -> bool:
    """True for a piece short enough to be merged with its neighbours."""
    return piece.end - piece.start + 1 < limits.small_lines


def _fits(start: int, end: int, limits: ChunkLimits, lengths: list[int]) -> bool:
    """True if rows `start`..`end` stay within the merge size."""
    rows = end - start + 1
    most_rows = min(limits.merge_lines, limits.max_lines)
    most_chars = min(limits.merge_chars, limits.max_chars)
    return rows <= most_rows and sum(lengths[start:end + 1]) <= most_chars


def _combine(group: list[Piece]) -> Piece:
    """One piece spanning a group; it keeps the symbol when it holds one definition."""
    defs = [p for p in group if p.is_definition]
    if len(group) == 1:
        return group[0]
    if len(defs) == 1 and all(p.kind == "block" for p in group if not p.is_definition):
        only = defs[0]
        return Piece(group[0].start, max(p.end for p in group), only.kind, only.symbol, True)
    names = [p.symbol for p in defs if p.symbol]
    symbol = ", ".join(dict.fromkeys(names)) if names else None
    return Piece(group[0].start, max(p.end for p in group), "block", symbol, bool(defs))


def _split_chars(piece: Piece, limits: ChunkLimits, lengths: list[int]) -> list[Piece]:
    """Split a piece whose text exceeds `max_chars` into consecutive row ranges."""
    if sum(lengths[piece.start:piece.end + 1]) <= limits.max_chars:
        return [piece]
    parts: list[Piece] = []
    row = piece.start
    while row <= piece.end:
        size, last = 0, row
        while last <= piece.end and (last == row or size + lengths[last] <= limits.max_chars):
            size += lengths[last]
            last += 1
        parts.append(Piece(row, last - 1, piece.kind, piece.symbol, piece.is_definition,
                            piece.sealed))
        row = last
    return parts
