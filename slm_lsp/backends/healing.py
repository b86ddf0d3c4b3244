"""Token healing: where the text the model must regenerate is cut.

A suggestion that starts inside a word (the user typed ``ret``) would be
predicted badly from a prompt that ends mid-token. The backend drops the last
word from the prompt and makes the first generated token start with it.
"""

from __future__ import annotations

import re

_LAST_WORD = re.compile(r"(?: ?[A-Za-z0-9_]+| |[^ ])\Z")


def heal_split(forced: str) -> tuple[str, str]:
    """``forced`` cut into the text that goes into the prompt and the piece that
    constrains the first generated token.

    Only the last word (with the space before it), or the last blank, is left to
    the model: it picks the token that starts with it, which is what token
    healing is for. The text before it is tokenized the way the model would
    have tokenized it and evaluated with the prompt. Forcing every byte through
    per-step constrained picks instead lets the model choose splits it never
    saw in training (an indentation as three spaces and then single ones),
    after which it can generate nothing but blanks; it also costs one decoding
    step per forced token.
    """
    match = _LAST_WORD.search(forced)
    if match is None:
        return forced, ""
    return forced[:match.start()], match.group(0)
