"""Lexical retrieval: BM25 over identifier word pieces, updated one chunk at a time."""

from __future__ import annotations

import math
import re
import sys
from collections import Counter
from collections.abc import Iterable

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PIECE = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
STOPWORDS = frozenset(
    "a an and are as at be by do does for from how i if in into is it its of on or "
    "that the this to was what when where which with".split())


def _stem(word: str) -> str:
    """A very light English stem so `parses`/`parsing` meet `parse`."""
    for suffix in ("ing", "es", "ed", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not word.endswith("ss"):
            return word[: -len(suffix)]
    return word


def split_identifier(word: str) -> list[str]:
    """`parseHTTPResponse_v2` -> ['parse', 'http', 'response', 'v', '2'] (lower case)."""
    return [p.lower() for part in word.split("_") for p in _PIECE.findall(part)]


def tokenize(text: str) -> list[str]:
    """Terms of a text: each identifier whole plus its camelCase/snake_case pieces, stemmed."""
    terms: list[str] = []
    for word in _WORD.findall(text):
        lower = word.lower()
        pieces = split_identifier(word)
        if len(pieces) > 1 and lower not in STOPWORDS:
            terms.append(lower)
        terms.extend(_stem(p) for p in pieces if len(p) > 1 and p not in STOPWORDS)
    return terms


class LexicalIndex:
    """An inverted index with BM25 scoring; documents are chunks keyed by int id."""

    def __init__(self, k1: float = 1.2, b: float = 0.75) -> None:
        """An empty index with BM25 parameters `k1` and `b`."""
        self.k1 = k1
        self.b = b
        self._postings: dict[str, dict[int, int]] = {}
        self._lengths: dict[int, int] = {}
        self._terms: dict[int, tuple[str, ...]] = {}
        self._total_length = 0

    def __len__(self) -> int:
        """Number of documents."""
        return len(self._lengths)

    def add(self, doc_id: int, text: str) -> None:
        """Index (or re-index) one document."""
        if doc_id in self._lengths:
            self.remove([doc_id])
        counts = Counter(map(sys.intern, tokenize(text)))
        for term, tf in counts.items():
            self._postings.setdefault(term, {})[doc_id] = tf
        length = sum(counts.values())
        # Interned, so that every document's tuple points at one string per term: on
        # Django (38,178 chunks, 1.7 M postings) the index held 312 MiB with a copy per
        # document and 215 MiB without (bench/indexmem-django*.json).
        self._terms[doc_id] = tuple(counts)
        self._lengths[doc_id] = length
        self._total_length += length

    def remove(self, doc_ids: Iterable[int]) -> None:
        """Drop documents (unknown ids are ignored)."""
        for doc_id in doc_ids:
            if doc_id not in self._lengths:
                continue
            self._total_length -= self._lengths.pop(doc_id)
            for term in self._terms.pop(doc_id):
                posting = self._postings[term]
                del posting[doc_id]
                if not posting:
                    del self._postings[term]

    def search(self, query: str, k: int, exclude: frozenset[int] = frozenset(),
               max_df: float = 0.5) -> list[tuple[int, float]]:
        """The `k` best (doc id, BM25 score) pairs; terms in over `max_df` of docs are skipped."""
        n = len(self._lengths)
        if n == 0:
            return []
        avg = self._total_length / n or 1.0
        scores: dict[int, float] = {}
        for term in dict.fromkeys(tokenize(query)):
            posting = self._postings.get(term)
            if not posting or (n > 20 and len(posting) > max_df * n):
                continue
            idf = math.log(1.0 + (n - len(posting) + 0.5) / (len(posting) + 0.5))
            for doc_id, tf in posting.items():
                norm = self.k1 * (1 - self.b + self.b * self._lengths[doc_id] / avg)
                scores[doc_id] = scores.get(doc_id, 0.0) + idf * tf * (self.k1 + 1) / (tf + norm)
        ranked = sorted(((d, s) for d, s in scores.items() if d not in exclude),
                        key=lambda item: (-item[1], item[0]))
        return ranked[:k]
