"""The seam between the engine and a model: the ``ModelBackend`` protocol."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from prompts.explain import Message, render_chat
from prompts.fim import FimFamily, Segment


class BackendError(Exception):
    """A model could not be loaded or used; the message is shown to the user."""


class Cancelled(Exception):
    """Generation stopped because the request was cancelled or superseded."""


@dataclass
class Generation:
    """What one generation produced and what it cost."""

    text: str
    n_prompt: int = 0
    n_reused: int = 0
    """Prompt tokens whose model state came from the cache."""
    n_generated: int = 0
    prompt_ms: float = 0.0
    generate_ms: float = 0.0
    stop_reason: str = "length"
    """eog (end of generation token), stop (stop rule), length, cancelled."""
    timings: dict[str, float] = field(default_factory=dict)
    mean_logprob: float | None = None
    """Mean natural-log probability of the tokens the model chose (None: not known)."""


StopRule = Callable[[str], int | None]
"""Given the text so far, the length to cut it at and stop, or None to go on."""


class ModelBackend(Protocol):
    """A code model that can complete a prompt, one request at a time."""

    @property
    def name(self) -> str:
        """A short name for logs and `doctor` (file name or server model)."""
        ...

    @property
    def fim(self) -> FimFamily | None:
        """The model's fill-in-the-middle family, read from its vocabulary."""
        ...

    @property
    def chat_template(self) -> str | None:
        """The model's own chat template (Jinja), if it has one."""
        ...

    def count_tokens(self, text: str) -> int:
        """How many tokens ``text`` takes (no special-token parsing)."""
        ...

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
        """Greedy-decode after ``prompt``; raise ``Cancelled`` if ``cancel`` is set.

        ``forced`` is text the output must start with (token healing); it is
        generated under that constraint and left out of the returned text.
        ``avoid`` asks for an answer other than an unusable one: a local model skips
        first tokens that would begin it again, end the answer, or start with a line
        break (see ``LlamaBackend``); a server that cannot be asked that ignores it.
        """
        ...

    def close(self) -> None:
        """Free the model."""
        ...


def chat_by_template(backend: ModelBackend, messages: Sequence[Message], *, max_tokens: int,
                     stop: StopRule | None = None,
                     cancel: threading.Event | None = None) -> Generation:
    """An answer from a completion backend: the conversation rendered with the model's own
    chat template (its special tokens recognised when the backend can look them up)."""
    lookup = getattr(backend, "_special_id", None)
    is_special = (lambda text: lookup(text) is not None) if callable(lookup) else None
    segments = render_chat(backend.chat_template, messages, is_special)
    return backend.generate(segments, max_tokens=max_tokens, stop=stop, cancel=cancel)


def chat(backend: ModelBackend, messages: Sequence[Message], *, max_tokens: int,
         stop: StopRule | None = None, cancel: threading.Event | None = None) -> Generation:
    """An answer to a conversation: the backend's own ``chat`` when it has one (a server
    applies its chat template), else ``chat_by_template``."""
    own = getattr(backend, "chat", None)
    if callable(own):
        gen: Generation = own(messages, max_tokens=max_tokens, stop=stop, cancel=cancel)
        return gen
    return chat_by_template(backend, messages, max_tokens=max_tokens, stop=stop, cancel=cancel)
