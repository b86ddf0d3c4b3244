"""How the KV cache lines a new prompt up with the cached one (``plan``)."""

from __future__ import annotations

import random

import pytest

from slm_lsp.backends.kv import KVCache, deleted_before_cursor, plan
from slm_lsp.backends.vocab import PieceTable

MIN, REFRESH = KVCache.MIN_SPLICE, KVCache.REFRESH


def common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b) - 1) and a[n] == b[n]:
        n += 1
    return n


def check(cached: list[int], prompt: list[int]) -> list[tuple[int, int, int]]:
    """Plan, and assert what every plan must satisfy."""
    n = common_prefix(cached, prompt)
    blocks = plan(cached, prompt, n, MIN, REFRESH)
    last_old = last_new = n
    for old, new, size in blocks:
        assert size >= MIN
        assert old >= last_old and new >= last_new, "blocks must be in order in both"
        assert cached[old:old + size] == prompt[new:new + size]
        assert new + size <= len(prompt) - 1, "the last token is always evaluated"
        last_old, last_new = old + size, new + size
    return blocks


def evaluated(prompt: list[int], n: int, blocks: list[tuple[int, int, int]]) -> int:
    return len(prompt) - n - sum(size for _, _, size in blocks)


def test_typing_before_the_suffix_keeps_the_suffix() -> None:
    prefix, suffix = list(range(1000, 1400)), list(range(2000, 2300))
    cached = [1, *prefix, 2, *suffix, 3]
    prompt = [1, *prefix, 77, 78, 2, *suffix, 3]
    blocks = check(cached, prompt)
    assert len(blocks) == 1
    # Only the typed tokens, the refreshed window and the last token are evaluated.
    assert evaluated(prompt, common_prefix(cached, prompt), blocks) == 2 + REFRESH + 1


def test_moving_the_cursor_down_moves_the_suffix_marker_only() -> None:
    a, b, s = list(range(1000, 1400)), list(range(5000, 5060)), list(range(2000, 2300))
    cached = [1, *a, 2, *b, *s, 3]      # cursor between a and b
    prompt = [1, *a, *b, 2, *s, 3]      # cursor after b
    blocks = check(cached, prompt)
    n = common_prefix(cached, prompt)
    assert [size for _, _, size in blocks] == [len(b) - REFRESH, len(s) - REFRESH]
    assert evaluated(prompt, n, blocks) == 2 * REFRESH + 1 + 1


def test_a_window_that_slides_keeps_the_middle() -> None:
    head, body, new = list(range(1000, 1100)), list(range(3000, 4000)), list(range(6000, 6050))
    cached = [1, *head, *body, 3]
    prompt = [1, *body, *new, 3]
    blocks = check(cached, prompt)
    assert len(blocks) == 1 and blocks[0][2] == len(body) - REFRESH
    assert blocks[0][0] - blocks[0][1] == len(head), "moved left by the dropped head"


def test_holes_are_never_reused_and_short_runs_are_evaluated() -> None:
    body = list(range(3000, 3200))
    cached = [1, *body[:100], *[KVCache.HOLE] * 50, *body[150:], 3]
    prompt = [1, 9, *body, 3]
    blocks = check(cached, prompt)
    assert all(KVCache.HOLE not in cached[o:o + s] for o, _, s in blocks)
    assert plan([1, 2, 3], [1, 2, 4, 3], 2, MIN, REFRESH) == []


def test_random_edits_always_give_a_valid_plan() -> None:
    rng = random.Random(7)
    for _ in range(300):
        cached = [rng.randrange(50) for _ in range(rng.randrange(0, 600))]
        prompt = list(cached)
        for _ in range(rng.randrange(1, 4)):
            at = rng.randrange(len(prompt) + 1)
            if rng.random() < 0.5:
                del prompt[at:at + rng.randrange(40)]
            else:
                prompt[at:at] = [rng.randrange(50) for _ in range(rng.randrange(40))]
        if len(prompt) < 2:
            continue
        check(cached, prompt)


def test_after_a_cursor_move_the_tokens_around_the_cursor_are_recomputed() -> None:
    a, b, s = list(range(1000, 1400)), list(range(5000, 5100)), list(range(2000, 2300))
    cached = [1, *a, 2, *b, *s, 3]      # marker (2) before b
    prompt = [1, *a, *b, 2, *s, 3]      # the cursor moved over b
    mark_c, mark_p = 1 + len(a), 1 + len(a) + len(b)
    n = common_prefix(cached, prompt)
    window = KVCache.WINDOW
    blocks = plan(cached, prompt, n, MIN, REFRESH, marks=(mark_c, mark_p), window=window)
    for old, new, size in blocks:
        assert cached[old:old + size] == prompt[new:new + size]
        assert new + size <= mark_p - window or new >= mark_p + window
    kept = sum(size for _, _, size in blocks)
    assert kept >= len(b) + len(s) - 2 * window - 2 * REFRESH
    # Typing (nothing crossed the marker): no window, only the refresh.
    typed = [1, *a, 77, 2, *b, *s, 3]
    blocks = plan(cached, typed, common_prefix(cached, typed), MIN, REFRESH,
                  marks=(mark_c, mark_c + 1), window=window)
    assert blocks == [(mark_c + REFRESH, mark_c + 1 + REFRESH, len(b) + len(s) + 1 - REFRESH)]


def test_piece_table_returns_each_token_s_bytes() -> None:
    pieces = [b"", b"def", b" ", b"\xe2\x82", b"\xac", b"return"]
    table = PieceTable(iter(pieces))
    assert len(table) == 6
    assert [table[t] for t in range(6)] == pieces
    assert list(table) == pieces
    with pytest.raises(IndexError):
        table[6]
    with pytest.raises(IndexError):
        table[-1]


def test_a_deletion_before_the_cursor_is_told_from_typing_and_cursor_moves() -> None:
    # A toy vocabulary: 1-3 are the FIM prefix, suffix and middle tokens.
    words = ["if ok:", "\n", "    ", " return", " x", "\n", "    ", " pass", " y", " z"]
    vocab = {10 + i: w.encode() for i, w in enumerate(words)}
    vocab.update({1: b"<P>", 2: b"<S>", 3: b"<M>", KVCache.HOLE: b""})

    def text(tokens: list[int]) -> bytes:
        return b"".join(vocab[t] for t in tokens if t >= 0)

    def deleted(cached: list[int], prompt: list[int], forced: bytes = b"") -> bool:
        n = common_prefix(cached, prompt)
        return deleted_before_cursor(cached, cached.index(2), prompt, prompt.index(2), n,
                                     forced, text, 3)

    suffix = [15, 16, 17, 18]
    # The cursor was after "    return" (the rest-of-line task) ...
    typed = [1, 10, 11, 12, 13, 2, *suffix, 3, 14]
    # ... and the line was then emptied: " return" is gone.
    emptied = [1, 10, 2, *suffix, 3, 11, 12]
    assert deleted(typed, emptied)
    assert deleted(typed, emptied, b" ")
    # Backspacing over the blank after "return" leaves the word to token healing: kept.
    assert not deleted(typed, emptied, b" return")
    # Typing on extends the text; going on from a line with nothing before the cursor too.
    assert not deleted(emptied, typed)
    assert not deleted(typed, [1, 10, 11, 12, 13, 14, 2, *suffix, 3, 19])
    # The cursor moved down over the next line, or back up: the text is all still there.
    at_x = [1, 10, 11, 12, 13, 2, *suffix, 3]      # "if ok:\n    return x|\n    pass y"
    at_y = [1, 10, 11, 12, 13, 14, 15, 16, 17, 2, 3]
    assert not deleted(at_x, at_y, b" y")
    assert not deleted(at_y, at_x, b" x")
    assert deleted(at_y, at_x, b" z")  # " x" was replaced
    # Holes (cells a cancelled evaluation never made) hold no text to lose.
    assert not deleted([1, 10, KVCache.HOLE, 2, *suffix], [1, 10, 2, *suffix, 3, 11])
    # Blanks alone, or no marker in either prompt, never count.
    assert not deleted([1, 10, 11, 12, 2, *suffix], [1, 10, 2, *suffix])
    assert not deleted_before_cursor(typed, None, emptied, 2, 2, b"", text, 3)
    # A line above the cursor typed on (an insertion before the old cursor): kept;
    # that line deleted: not.
    two = [1, 10, 11, 12, 13, 15, 16, 17, 2, 18, 3]  # "if ok:\n    return\n    pass| y"
    assert not deleted(two, [1, 10, 11, 12, 13, 14, 15, 16, 17, 2, 18, 3])
    assert deleted(two, [1, 10, 15, 16, 17, 2, 18, 3])
