"""The on-prem server first, the local model whenever it fails.

``FallbackBackend`` is one ``ModelBackend`` made of two: requests go to the remote
server while it works; a failure (unreachable, too slow, an error, a broken stream)
answers that same request from the local model and opens a circuit breaker, so a
dead server costs one timeout, not one per keystroke. After ``retry_s`` one request
tries the server again; success closes the breaker, failure doubles the wait (up to
``max_retry_s``). The engine builds prompts in the remote model's FIM tokens; for
the local model they are swapped for its own.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from prompts.explain import Message
from prompts.fim import FimFamily, Segment

from .base import BackendError, Generation, ModelBackend, StopRule, chat_by_template
from .openai import OpenAIBackend, ServerError

log = logging.getLogger(__name__)

Notify = Callable[[str, str], None]
"""Called with ("fallback" | "remote", message): the server failed, or answers again."""


class Breaker:
    """Closed: use the server. Open: skip it until the wait is over, then try once."""

    def __init__(self, retry_s: float = 30.0, max_retry_s: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.retry_s = retry_s
        self.max_retry_s = max_retry_s
        self._clock = clock
        self._lock = threading.Lock()
        self._open_until: float | None = None
        self._wait = retry_s

    @property
    def closed(self) -> bool:
        """Whether the server is in use (no failure since the last success)."""
        return self._open_until is None

    @property
    def wait_s(self) -> float:
        """Seconds the next failure keeps the server skipped."""
        return self._wait

    def allows(self) -> bool:
        """Whether a request may try the server now (a trial once the wait is over)."""
        with self._lock:
            if self._open_until is None:
                return True
            if self._clock() >= self._open_until:
                self._open_until = self._clock() + self._wait  # one trial per wait
                return True
            return False

    def failed(self) -> bool:
        """Record a failure; True if the breaker was closed until now."""
        with self._lock:
            was_closed = self._open_until is None
            if not was_closed:
                self._wait = min(self._wait * 2, self.max_retry_s)
            self._open_until = self._clock() + self._wait
            return was_closed

    def succeeded(self) -> bool:
        """Record a success; True if the breaker was open until now."""
        with self._lock:
            was_open = self._open_until is not None
            self._open_until, self._wait = None, self.retry_s
            return was_open


def translate(prompt: Sequence[Segment], src: FimFamily | None,
              dst: FimFamily | None) -> list[Segment]:
    """``prompt`` with ``src``'s special tokens replaced by ``dst``'s (dropped if it has none)."""
    if src is None or dst is None or src == dst:
        return list(prompt)
    if src.order != dst.order:
        raise BackendError(f"the local model's fill-in-the-middle layout ({dst.name}) differs "
                           f"from the server model's ({src.name})")
    roles = {src.prefix: dst.prefix, src.suffix: dst.suffix, src.middle: dst.middle}
    for a, b in ((src.repo_name, dst.repo_name), (src.file_sep, dst.file_sep)):
        if a is not None:
            roles[a] = b  # type: ignore[assignment]
    out: list[Segment] = []
    for seg in prompt:
        if not seg.special:
            out.append(seg)
        elif roles.get(seg.text):
            out.append(replace(seg, text=roles[seg.text]))
    return out


class FallbackBackend:
    """A remote backend (built on first use) with the local model behind it."""

    def __init__(self, remote: Callable[[], OpenAIBackend], local: ModelBackend,
                 breaker: Breaker | None = None, notify: Notify | None = None,
                 fim: FimFamily | None = None) -> None:
        self._make_remote = remote
        self._remote: OpenAIBackend | None = None
        self.local = local
        self.breaker = breaker or Breaker()
        self._notify = notify
        self._lock = threading.Lock()
        self.last = ""
        """Name of the backend that answered the last request (the server or the local model)."""
        self.problem: str | None = None
        if fim is None:  # try the server now: its FIM tokens are the prompts' layout
            remote_now = self._remote_backend()
            fim = remote_now.fim if remote_now is not None else None
        self._fim = fim or local.fim
        """The FIM tokens prompts are built with (the engine reads them once)."""

    # which backend

    def _remote_backend(self) -> OpenAIBackend | None:
        """The remote backend if the breaker lets a request try it (building it if needed)."""
        if not self.breaker.allows():
            return None
        with self._lock:
            if self._remote is None:
                try:
                    self._remote = self._make_remote()
                except ServerError as exc:
                    self._failed(exc)
                    return None
            return self._remote

    def _failed(self, exc: Exception) -> None:
        self.problem = str(exc)
        if self.breaker.failed():
            message = f"using the local model {self.local.name}: {exc}"
            log.warning("%s", message)
            if self._notify:
                self._notify("fallback", message)
        else:
            log.info("on-prem server still failing (retry in %.0f s): %s",
                     self.breaker.wait_s, exc)

    @property
    def answering(self) -> bool:
        """Whether requests go to the server now (it has not failed since it last answered)."""
        return self.breaker.closed

    def _succeeded(self, remote: OpenAIBackend) -> None:
        self.problem = None
        if self.breaker.succeeded():
            log.info("the on-prem server %s answers again", remote.name)
            if self._notify:
                self._notify("remote", f"model {remote.name} ready (on-prem server)")

    # ModelBackend

    @property
    def name(self) -> str:
        remote = self._remote
        return remote.name if remote is not None else f"{self.local.name} (on-prem server unreachable)"

    @property
    def fim(self) -> FimFamily | None:
        return self._fim

    @property
    def chat_template(self) -> str | None:
        return None

    def count_tokens(self, text: str) -> int:
        """The local model's count: exact where the KV cache needs it, close for the server's
        code tokenizer, and no round trip."""
        return self.local.count_tokens(text)

    def _from_server(self, call: Callable[[OpenAIBackend], Generation]) -> Generation | None:
        """``call(server)`` if the breaker lets a request try it and it answers, else None."""
        remote = self._remote_backend()
        if remote is None:
            return None
        try:
            gen = call(remote)
        except ServerError as exc:
            self._failed(exc)
            return None
        self._succeeded(remote)
        self.last = remote.name
        return gen

    def generate(self, prompt: Sequence[Segment], *, max_tokens: int, stop: StopRule | None = None,
                 cancel: threading.Event | None = None, forced: str = "",
                 avoid: str = "") -> Generation:
        gen = self._from_server(lambda remote: remote.generate(
            translate(prompt, self._fim, remote.fim), max_tokens=max_tokens, stop=stop,
            cancel=cancel, forced=forced, avoid=avoid))
        if gen is not None:
            return gen
        self.last = self.local.name
        return self.local.generate(translate(prompt, self._fim, self.local.fim),
                                   max_tokens=max_tokens, stop=stop, cancel=cancel, forced=forced,
                                   avoid=avoid)

    def chat(self, messages: Sequence[Message], *, max_tokens: int, stop: StopRule | None = None,
             cancel: threading.Event | None = None) -> Generation:
        """An explanation from the server's chat endpoint, else from the local model."""
        gen = self._from_server(lambda remote: remote.chat(messages, max_tokens=max_tokens,
                                                           stop=stop, cancel=cancel))
        if gen is not None:
            return gen
        self.last = self.local.name
        return chat_by_template(self.local, messages, max_tokens=max_tokens, stop=stop,
                                cancel=cancel)

    def spawn(self, n_ctx: int) -> FallbackBackend:
        """The same server, with a second context on the local weights for explanations."""
        spawn = getattr(self.local, "spawn", None)
        local = spawn(n_ctx) if spawn is not None else self.local
        twin = FallbackBackend(self._make_remote, local, self.breaker, self._notify, self._fim)
        twin._owns_local = spawn is not None
        twin._remote = self._remote
        return twin

    _owns_local = True

    def close(self) -> None:
        if self._owns_local:
            self.local.close()
        if self._remote is not None:
            self._remote.close()

