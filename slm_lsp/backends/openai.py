"""A model served by the team's own OpenAI-compatible server (vLLM, llama.cpp's
server, llama-cpp-python's, Ollama, TGI), as a ``ModelBackend``.

Completions go to ``/completions`` with the FIM prompt our prompt code built (the
special tokens as their text, which these servers parse as tokens), explanations to
``/chat/completions``; both are streamed so a stop rule or a cancelled request
closes the connection at once. Only a URL that ``hosts.check_url`` accepted gets
here, and nothing but that host is ever contacted.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from prompts.explain import Message
from prompts.fim import FAMILIES, FimFamily, Segment, detect_family

from .base import BackendError, Cancelled, Generation, StopRule
from .hosts import Endpoint

log = logging.getLogger(__name__)

ENV_API_KEY = "SLM_LSP_API_KEY"
CHARS_PER_TOKEN = 3.5
"""Prompt budgets are estimated from text length: code runs about 3.5 characters a token."""
MAX_STOPS = 4
"""The OpenAI API takes at most four stop strings."""


class ServerError(BackendError):
    """The server could not be reached, answered an error, or sent something unreadable."""

    def __init__(self, message: str, *, answered: bool = False) -> None:
        super().__init__(message)
        self.answered = answered
        """The server did answer (an HTTP error status), so it is up."""


KEYRING_SERVICE = "slm-lsp"
"""The OS keyring entry holding a server's API key: this service, the server's host as user."""


def api_key(host: str) -> str | None:
    """The API key for ``host``: ``SLM_LSP_API_KEY``, else the OS keyring (when the optional
    ``keyring`` package is installed: `keyring set slm-lsp HOST`), else None."""
    key = os.environ.get(ENV_API_KEY)
    if key:
        return key
    try:
        import keyring  # optional; not a dependency
    except ImportError:
        return None
    try:
        return keyring.get_password(KEYRING_SERVICE, host) or None
    except Exception as exc:  # noqa: BLE001 - a locked or missing keyring is no key, said once
        log.warning("no API key from the OS keyring for %s: %s", host, exc)
        return None


def family_by_name(name: str) -> FimFamily | None:
    return next((f for f in FAMILIES if f.name == name), None)


def guess_family(model: str) -> FimFamily | None:
    """The FIM family a served model's name suggests (when the server cannot be asked)."""
    lowered = model.lower()
    for needle, family in (("qwen", "qwen2.5-coder"), ("starcoder", "starcoder"),
                           ("deepseek-coder", "deepseek-coder"), ("codellama", "codellama"),
                           ("code-llama", "codellama"), ("codestral", "codestral")):
        if needle in lowered and (needle != "qwen" or "coder" in lowered):
            return family_by_name(family)
    return None


class OpenAIBackend:
    """Greedy completions from an OpenAI-compatible server at ``endpoint``."""

    can_warm = False

    def __init__(self, endpoint: Endpoint, model: str, fim: str = "auto", *,
                 connect_timeout_s: float = 2.0, read_timeout_s: float = 10.0) -> None:
        self.endpoint = endpoint
        self.model = model
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self._api_key = api_key(endpoint.host)
        self._fim = self._resolve_fim(fim)

    # ModelBackend

    @property
    def name(self) -> str:
        return f"{self.model or 'served model'} at {self.endpoint.label}"

    @property
    def fim(self) -> FimFamily | None:
        return self._fim

    @property
    def chat_template(self) -> str | None:
        return None  # the server applies its own

    def count_tokens(self, text: str) -> int:
        return int(len(text) / CHARS_PER_TOKEN) + 1 if text else 0

    def generate(self, prompt: Sequence[Segment], *, max_tokens: int, stop: StopRule | None = None,
                 cancel: threading.Event | None = None, forced: str = "",
                 avoid: str = "") -> Generation:
        """A completion from the server (``avoid`` is not sent: the completions endpoint
        has no way to skip one first token)."""
        text = "".join(s.text for s in prompt) + forced
        body: dict[str, Any] = {"prompt": text, "max_tokens": max_tokens, "temperature": 0,
                                "stream": True}
        if self._fim is not None and self._fim.extra_stops:
            body["stop"] = list(self._fim.extra_stops[:MAX_STOPS])
        gen = self._stream("/completions", body, lambda c: c.get("text"), stop, cancel)
        gen.n_prompt = gen.n_prompt or self.count_tokens(text)
        return gen

    def chat(self, messages: Sequence[Message], *, max_tokens: int, stop: StopRule | None = None,
             cancel: threading.Event | None = None) -> Generation:
        """An answer from ``/chat/completions`` (the server's own chat template)."""
        body: dict[str, Any] = {
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "max_tokens": max_tokens, "temperature": 0, "stream": True}
        return self._stream("/chat/completions", body,
                            lambda c: (c.get("delta") or c.get("message") or {}).get("content"), stop, cancel)

    def close(self) -> None:
        pass  # no connection outlives a request

    # HTTP

    def _connection(self) -> http.client.HTTPConnection:
        ep = self.endpoint
        if ep.scheme == "https":
            return http.client.HTTPSConnection(ep.host, ep.port, timeout=self.connect_timeout_s,
                                               context=ssl.create_default_context())
        return http.client.HTTPConnection(ep.host, ep.port, timeout=self.connect_timeout_s)

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

    def _open(self, conn: http.client.HTTPConnection, path: str, body: dict[str, Any],
              opened: list[socket.socket] | None = None,
              cancel: threading.Event | None = None) -> http.client.HTTPResponse:
        """POST ``body``; the connected socket is appended to ``opened`` (the connection
        forgets it once a response without a length arrives)."""
        what = f"the inference server at {self.endpoint.label}"
        try:
            conn.connect()
            assert conn.sock is not None
            conn.sock.settimeout(self.read_timeout_s)
            if opened is not None:
                opened.append(conn.sock)
            conn.request("POST", path, json.dumps(body).encode(), self._headers())
            response = conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            if cancel is not None and cancel.is_set():  # the socket was shut to stop the wait
                raise Cancelled() from exc
            raise self._unreachable(exc) from exc
        if response.status != 200:
            detail = response.read(2000).decode("utf-8", "replace").strip()
            raise ServerError(f"{what} answered HTTP {response.status} to {path}: {detail[:300]}",
                              answered=True)
        return response

    def _unreachable(self, exc: Exception) -> ServerError:
        what = f"the inference server at {self.endpoint.label}"
        if isinstance(exc, TimeoutError):
            return ServerError(f"{what} did not answer within {self.read_timeout_s:g} s")
        if isinstance(exc, ssl.SSLError):
            return ServerError(f"{what}: TLS failed ({exc.reason or exc})")
        return ServerError(f"{what} cannot be reached ({exc})")

    def _post_json(self, path: str, body: dict[str, Any]) -> Any:
        conn = self._connection()
        try:
            response = self._open(conn, path, body)
            return json.loads(response.read(1 << 20))
        except (OSError, ValueError, http.client.HTTPException) as exc:
            raise ServerError(f"{path}: {exc}", answered=not isinstance(exc, OSError)) from exc
        finally:
            conn.close()

    def _stream(self, path: str, body: dict[str, Any], piece: Callable[[dict[str, Any]], Any],
                stop: StopRule | None, cancel: threading.Event | None) -> Generation:
        if cancel is not None and cancel.is_set():
            raise Cancelled()
        if self.model:
            body["model"] = self.model
        start = time.perf_counter()
        conn = self._connection()
        done = threading.Event()
        opened: list[socket.socket] = []
        if cancel is not None:
            threading.Thread(target=_close_on_cancel, args=(opened, cancel, done),
                             name="slm-remote-cancel", daemon=True).start()
        text, chunks, reason, first_ms = "", 0, "length", 0.0
        usage: dict[str, Any] = {}
        try:
            response = self._open(conn, self.endpoint.base_path + path, body, opened, cancel)
            for event in _events(response):
                if cancel is not None and cancel.is_set():
                    raise Cancelled()
                if "error" in event:
                    raise ServerError(f"the inference server reported: {event['error']}")
                usage = event.get("usage") or usage
                choices = event.get("choices") or []
                if not choices:
                    continue
                choice = choices[0]
                delta = piece(choice)
                if isinstance(delta, str) and delta:
                    if not chunks:
                        first_ms = (time.perf_counter() - start) * 1000
                    chunks += 1
                    text += delta
                    cut = stop(text) if stop else None
                    if cut is not None:
                        text, reason = text[:cut], "stop"
                        break
                finish = choice.get("finish_reason")
                if finish:
                    reason = "eog" if finish == "stop" else "length"
                    break
        except (OSError, ValueError, http.client.HTTPException) as exc:
            if cancel is not None and cancel.is_set():
                raise Cancelled() from exc
            if isinstance(exc, TimeoutError):
                raise ServerError(f"the inference server at {self.endpoint.label} stopped "
                                  f"sending for {self.read_timeout_s:g} s") from exc
            raise ServerError(f"the stream from {self.endpoint.label} broke off ({exc})") from exc
        finally:
            done.set()
            conn.close()
            for sock in opened:
                sock.close()
        if cancel is not None and cancel.is_set():
            raise Cancelled()
        total_ms = (time.perf_counter() - start) * 1000
        return Generation(text, n_prompt=int(usage.get("prompt_tokens") or 0),
                          n_generated=int(usage.get("completion_tokens") or chunks),
                          prompt_ms=first_ms or total_ms, generate_ms=total_ms - (first_ms or total_ms),
                          stop_reason=reason)

    # FIM tokens

    def _resolve_fim(self, fim: str) -> FimFamily | None:
        if fim != "auto":
            family = family_by_name(fim)
            if family is None:
                raise BackendError(f"slm.backend.fim {fim!r} is not a known FIM family "
                                   f"({', '.join(f.name for f in FAMILIES)} or auto)")
            return family
        family = detect_family(self._single_token_id)
        if family is None:
            family = guess_family(self.model)
        if family is None:
            raise BackendError(
                f"cannot tell the fill-in-the-middle tokens of {self.name}: the server has no "
                f"tokenize endpoint and the model name does not say; set slm.backend.fim")
        return family

    def _single_token_id(self, text: str) -> int | None:
        """The id of ``text`` when the server's tokenizer reads it as one token."""
        for tokens in self._tokenize(text):
            return tokens[0] if len(tokens) == 1 else None
        return None

    def _tokenize(self, text: str) -> Iterator[list[int]]:
        """The server's tokens for ``text`` from the first tokenize endpoint it has."""
        root = self.endpoint.base_path.removesuffix("/v1")
        failures: list[ServerError] = []
        probes = (("/extras/tokenize", {"input": text}),      # llama-cpp-python
                  ("/tokenize", {"content": text}),           # llama.cpp server
                  ("/tokenize", {"prompt": text}))            # vLLM
        for path, body in probes:
            if self.model:
                body = {**body, "model": self.model}
            try:
                answer = self._post_json(root + path, body)
            except ServerError as exc:
                log.debug("no tokenizer at %s: %s", path, exc)
                failures.append(exc)
                continue
            tokens = answer.get("tokens") if isinstance(answer, dict) else None
            if isinstance(tokens, list) and all(isinstance(t, int) for t in tokens):
                yield tokens
                return
        if failures and not any(f.answered for f in failures):
            raise failures[0]  # down, not lacking a tokenizer: the caller retries later


def _close_on_cancel(opened: list[socket.socket], cancel: threading.Event,
                     done: threading.Event) -> None:
    """Shut the request's socket as soon as ``cancel`` is set (ends a blocked read)."""
    while not done.is_set():
        if cancel.wait(0.02):
            for sock in opened:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            return


def _events(response: http.client.HTTPResponse) -> Iterator[dict[str, Any]]:
    """The JSON payloads of a server-sent event stream (or of one plain JSON answer)."""
    if "text/event-stream" not in (response.getheader("Content-Type") or ""):
        payload = json.loads(response.read(1 << 22))
        if not isinstance(payload, dict):
            raise ValueError("the answer is not a JSON object")
        yield payload
        return
    while True:
        line = response.readline(1 << 20)
        if not line:
            raise ValueError("the stream ended without [DONE]")
        line = line.strip()
        if not line.startswith(b"data:"):
            continue
        data = line[5:].strip()
        if data == b"[DONE]":
            return
        payload = json.loads(data)
        if not isinstance(payload, dict):
            raise ValueError("an event is not a JSON object")
        yield payload
