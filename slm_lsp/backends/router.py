"""Two models behind one ``ModelBackend``: a fast small one for typing, a large one for the rest.

``Router.route(kind)`` picks per request. Automatic single-line completions
(``keystroke``) run on the small local model, which keeps its warm-ups and KV
reuse; invoked and multi-line completions and explanations run on the large one
(the on-prem server with the local model behind it, or a larger local model).
A keystroke suggestion the small model is unsure of (the geometric mean of its
token probabilities under ``escalate_below``) is asked again of the large model.

Prompts are built in the large model's FIM tokens and translated for the small
one (a no-op when both are of one family).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Sequence

from prompts.explain import Message
from prompts.fim import FimFamily, Segment

from .base import BackendError, Generation, ModelBackend, StopRule, chat
from .fallback import translate

log = logging.getLogger(__name__)


class Router:
    """``small`` for keystrokes (unless ``keystrokes_small`` is off), ``large`` for the rest."""

    def __init__(self, small: ModelBackend, large: ModelBackend, *, keystrokes_small: bool = True,
                 escalate_below: float = 0.0, notify: Callable[[str, str], None] | None = None,
                 served: list[str] | None = None, owns: tuple[bool, bool] = (True, True)) -> None:
        self.small = small
        self.large = large
        self.keystrokes_small = keystrokes_small
        self.escalate_below = escalate_below
        """Mean token probability under which a keystroke suggestion goes to ``large`` (0: never)."""
        self._notify = notify
        self._last = served if served is not None else [""]
        """Who answered the last request, shared with ``spawn``'s twin."""
        self._owns = owns

    # who answered

    @property
    def last(self) -> str:
        """Name of the model that answered the last request."""
        return self._last[0]

    def _served(self, backend: ModelBackend) -> None:
        name = getattr(backend, "last", "") or backend.name
        if name != self._last[0]:
            self._last[0] = name
            if self._notify:
                self._notify("served", f"last answer from {name}")

    # ModelBackend

    @property
    def name(self) -> str:
        return f"{self.small.name} with {self.large.name}"

    @property
    def problem(self) -> str | None:
        """The large model's problem (an unreachable on-prem server), if any."""
        return getattr(self.large, "problem", None)

    @property
    def fim(self) -> FimFamily | None:
        return self.large.fim or self.small.fim

    @property
    def chat_template(self) -> str | None:
        return self.large.chat_template

    def count_tokens(self, text: str) -> int:
        """The small model's count: exact where its KV cache needs it, close for the large one."""
        return self.small.count_tokens(text)

    @property
    def can_warm(self) -> bool:
        """Warm-ups prepare keystroke completions, which the small model serves."""
        return self.keystrokes_small and bool(getattr(self.small, "can_warm", False))

    def warm(self, prompt: Sequence[Segment], cancel: threading.Event | None = None) -> int:
        warm = getattr(self.small, "warm", None)
        if warm is None:
            raise BackendError(f"{self.small.name} cannot warm regions")
        return int(warm(translate(prompt, self.fim, self.small.fim), cancel))

    def route(self, kind: str) -> ModelBackend:
        """``keystroke`` (an automatic single-line completion): the small model, escalating
        when unsure; anything else: the large model."""
        if kind == "keystroke" and self.keystrokes_small:
            return _Keystroke(self)
        return self

    def unsure(self, gen: Generation) -> bool:
        """Whether the small model's answer is unsure enough to ask the large one."""
        if self.escalate_below <= 0 or gen.mean_logprob is None:
            return False
        if not getattr(self.large, "answering", True):  # an on-prem server known to be down
            return False
        return math.exp(gen.mean_logprob) < self.escalate_below

    def generate_small(self, prompt: Sequence[Segment], *, max_tokens: int,
                       stop: StopRule | None = None, cancel: threading.Event | None = None,
                       forced: str = "", avoid: str = "") -> Generation:
        gen = self.small.generate(translate(prompt, self.fim, self.small.fim),
                                  max_tokens=max_tokens, stop=stop, cancel=cancel, forced=forced,
                                  avoid=avoid)
        self._served(self.small)
        return gen

    def generate(self, prompt: Sequence[Segment], *, max_tokens: int, stop: StopRule | None = None,
                 cancel: threading.Event | None = None, forced: str = "",
                 avoid: str = "") -> Generation:
        gen = self.large.generate(translate(prompt, self.fim, self.large.fim),
                                  max_tokens=max_tokens, stop=stop, cancel=cancel, forced=forced,
                                  avoid=avoid)
        self._served(self.large)
        return gen

    def chat(self, messages: Sequence[Message], *, max_tokens: int, stop: StopRule | None = None,
             cancel: threading.Event | None = None) -> Generation:
        """An explanation from the large model."""
        gen = chat(self.large, messages, max_tokens=max_tokens, stop=stop, cancel=cancel)
        self._served(self.large)
        return gen

    def spawn(self, n_ctx: int) -> Router:
        """A twin whose large model is a second context (for explanations); it shares the
        small model and the record of who answered."""
        spawn = getattr(self.large, "spawn", None)
        large = spawn(n_ctx) if spawn is not None else self.large
        return Router(self.small, large, keystrokes_small=self.keystrokes_small,
                      escalate_below=self.escalate_below, notify=self._notify, served=self._last,
                      owns=(False, spawn is not None))

    def close(self) -> None:
        for backend, owned in zip((self.small, self.large), self._owns, strict=True):
            if owned:
                backend.close()


class _Keystroke:
    """A ``Router`` seen from a keystroke completion: the small model, the large one when unsure."""

    def __init__(self, router: Router) -> None:
        self._router = router

    @property
    def name(self) -> str:
        return self._router.small.name

    @property
    def fim(self) -> FimFamily | None:
        return self._router.fim

    @property
    def chat_template(self) -> str | None:
        return None

    def count_tokens(self, text: str) -> int:
        return self._router.count_tokens(text)

    def generate(self, prompt: Sequence[Segment], *, max_tokens: int, stop: StopRule | None = None,
                 cancel: threading.Event | None = None, forced: str = "",
                 avoid: str = "") -> Generation:
        router = self._router
        gen = router.generate_small(prompt, max_tokens=max_tokens, stop=stop, cancel=cancel,
                                    forced=forced, avoid=avoid)
        if not router.unsure(gen):
            return gen
        big = router.generate(prompt, max_tokens=max_tokens, stop=stop, cancel=cancel,
                              forced=forced, avoid=avoid)
        big.prompt_ms += gen.prompt_ms
        big.generate_ms += gen.generate_ms
        big.timings["escalated_logprob"] = gen.mean_logprob or 0.0
        return big

    def close(self) -> None:
        pass  # the router owns the models
