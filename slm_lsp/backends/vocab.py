"""The model's vocabulary as bytes, packed for memory."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np


class PieceTable:
    """Token bytes by token id, packed in one buffer: a list of 150,000 small bytes
    objects (the default model's vocabulary) holds 8 MiB, this about 2 MiB."""

    def __init__(self, pieces: Iterable[bytes]) -> None:
        blob = bytearray()
        ends: list[int] = []
        for piece in pieces:
            blob += piece
            ends.append(len(blob))
        self._blob = bytes(blob)
        self._ends = np.array(ends, dtype=np.int64)

    def __len__(self) -> int:
        return len(self._ends)

    def __getitem__(self, token: int) -> bytes:
        if not 0 <= token < len(self._ends):
            raise IndexError(token)
        start = int(self._ends[token - 1]) if token else 0
        return self._blob[start:int(self._ends[token])]

    def __iter__(self) -> Iterator[bytes]:
        return (self[token] for token in range(len(self._ends)))
