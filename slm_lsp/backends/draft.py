"""Prompt-lookup drafting: tokens likely to come next, taken from text already seen.

The backend verifies a draft in one batch; a good draft saves decoding steps,
a wrong one costs a slightly bigger batch.
"""

from __future__ import annotations

from collections.abc import Sequence

PROMPT_DRAFT = 4
"""Most tokens drafted from the prompt (drafts from the previous suggestion get more)."""


def lookup_draft(history: list[int], previous: list[int], limit: int,
                 prompt_limit: int = PROMPT_DRAFT, prompt_keys: Sequence[int] = (3,)) -> list[int]:
    """Prompt-lookup drafts: the tokens that followed the latest occurrence of the last
    tokens of ``history`` (prompt plus what was generated so far).

    The previous suggestion is searched first, with the last 3 and then 2 tokens as the
    key, for up to ``limit`` tokens: while the user types along a suggestion, the new
    one repeats it. Then the prompt, with keys of ``prompt_keys`` tokens, for up to
    ``prompt_limit`` tokens: there a match says less, and a rejected draft costs a
    bigger batch for nothing (``python -m slm_lsp.bench.decode`` compares the rules).
    """
    sources = [(3, previous, limit), (2, previous, limit)]
    sources += [(k, history[:-1], prompt_limit) for k in prompt_keys]
    for key_len, corpus, most in sources:
        if len(history) <= key_len or most <= 0:
            continue
        key = history[-key_len:]
        for i in range(len(corpus) - key_len, -1, -1):
            if corpus[i:i + key_len] == key:
                follow = corpus[i + key_len:i + key_len + most]
                if follow:
                    return follow
    return []
