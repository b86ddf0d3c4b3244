"""A scripted backend for fast unit tests. Never used by the product."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from prompts.fim import FAMILIES, FimFamily, Segment

from .base import Cancelled, Generation, StopRule


class FakeBackend:
    """Answers every prompt with ``reply(prompt_text)``, one character per "token"."""

    def __init__(
        self,
        reply: Callable[[str], str] | str = "",
        *,
        fim: FimFamily | None = FAMILIES[0],
        delay: float = 0.0,
        can_warm: bool = False,
        name: str = "fake",
        logprob: float | None = None,
        second: str | None = None,
    ) -> None:
        """``second``: the reply when asked to ``avoid`` the first one (None: the same)."""
        self._reply = reply if callable(reply) else (lambda _p, r=reply: r)
        self._fim = fim
        self._name = name
        self.logprob = logprob
        """Reported as every answer's mean token log-probability."""
        self.delay = delay
        self.can_warm = can_warm
        """Offer region warm-ups (``warm``); off by default so other tests see no extra calls."""
        self.warmed: list[str] = []
        self.prompts: list[str] = []
        self.forced: list[str] = []
        self.avoided: list[str] = []
        self.second = second
        self.closed = False

    @property
    def name(self) -> str:
        return self._name

    @property
    def fim(self) -> FimFamily | None:
        return self._fim

    @property
    def chat_template(self) -> str | None:
        return None

    def count_tokens(self, text: str) -> int:
        return max(1, len(text) // 4) if text else 0

    def generate(
        self,
        prompt: Sequence[Segment],
        *,
        max_tokens: int,
        stop: StopRule | None = None,
        cancel: threading.Event | None = None,
        forced: str = "",
        avoid: str = "",
    ) -> Generation:
        text = "".join(s.text for s in prompt)
        self.prompts.append(text)
        self.forced.append(forced)
        self.avoided.append(avoid)
        full = self._reply(text)
        if avoid and self.second is not None:  # the next-best answer, as a model gives one
            full = self.second
        if full.startswith(forced):  # a reply that spells out the healed text
            full = full[len(forced):]
        out = ""
        for n, ch in enumerate(full[:max_tokens]):
            if cancel is not None and (cancel.wait(self.delay) if self.delay else cancel.is_set()):
                raise Cancelled()
            out += ch
            cut = stop(out) if stop else None
            if cut is not None:
                return Generation(out[:cut], n_prompt=len(text), n_generated=n + 1,
                                  stop_reason="stop", mean_logprob=self.logprob)
        return Generation(out, n_prompt=len(text), n_generated=len(out), mean_logprob=self.logprob)

    def warm(self, prompt: Sequence[Segment], cancel: threading.Event | None = None) -> int:
        """Records the prompt's text; takes ``delay`` seconds, interrupted by ``cancel``."""
        if cancel is not None and (cancel.wait(self.delay) if self.delay else cancel.is_set()):
            raise Cancelled()
        text = "".join(s.text for s in prompt)
        self.warmed.append(text)
        return self.count_tokens(text)

    def close(self) -> None:
        self.closed = True
