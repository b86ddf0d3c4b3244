"""The on-prem backend against a scripted HTTP server on loopback (real sockets, real
SSE framing), the circuit breaker, FIM translation and the host policy."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from prompts.explain import Message
from prompts.fim import FAMILIES, Segment, special
from slm_lsp.backends.base import BackendError, Cancelled
from slm_lsp.backends.fake import FakeBackend
from slm_lsp.backends.fallback import Breaker, FallbackBackend, translate
from slm_lsp.backends.hosts import HostNotAllowed, check_url, is_loopback
from slm_lsp.backends.openai import OpenAIBackend, ServerError, guess_family
from slm_lsp.backends.router import Router
from slm_lsp.runtime import with_large
from slm_lsp.settings import BackendSettings, parse_settings

QWEN, STARCODER = FAMILIES[0], FAMILIES[1]


class Script:
    """What the scripted server answers: SSE pieces with a delay before each."""

    def __init__(self) -> None:
        self.pieces: list[str] = ["def ", "main", "():", "\n"]
        self.delay = 0.0
        self.status = 200
        self.raw: bytes | None = None
        self.finish = "stop"
        self.drop_after: int | None = None
        self.requests: list[tuple[str, dict[str, Any], dict[str, str]]] = []
        self.closed_early = threading.Event()
        self.tokenizer = True
        self.header_delay = 0.0


def _handler(script: Script) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_args: Any) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            script.requests.append((self.path, body, dict(self.headers)))
            if self.path.endswith("tokenize"):
                return self._tokenize(body)
            time.sleep(script.header_delay)  # a server reading a long prompt sends nothing
            if script.status != 200 or script.raw is not None:
                self.send_response(script.status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(script.raw or b'{"error": "boom"}')
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            chat = self.path.endswith("chat/completions")
            try:
                for n, piece in enumerate(script.pieces):
                    if script.drop_after is not None and n == script.drop_after:
                        return  # the connection closes without [DONE]
                    time.sleep(script.delay)
                    choice = {"delta": {"content": piece}} if chat else {"text": piece}
                    self._event({"choices": [{**choice, "finish_reason": None}]})
                self._event({"choices": [{"text": "", "delta": {}, "finish_reason": script.finish}]})
                self.wfile.write(b"data: [DONE]\n\n")
            except (BrokenPipeError, ConnectionResetError):
                script.closed_early.set()

        def _event(self, payload: dict[str, Any]) -> None:
            self.wfile.write(b"data: " + json.dumps(payload).encode() + b"\n\n")
            self.wfile.flush()

        def _tokenize(self, body: dict[str, Any]) -> None:
            if not script.tokenizer or self.path != "/extras/tokenize":
                self.send_response(404)
                self.end_headers()
                return
            text = body["input"]
            specials = {QWEN.prefix: 1, QWEN.suffix: 2, QWEN.middle: 3}
            tokens = [specials[text]] if text in specials else list(range(len(text) + 5))
            data = json.dumps({"tokens": tokens}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


@pytest.fixture
def server() -> Iterator[tuple[Script, str]]:
    script = Script()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(script))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield script, f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()
    httpd.server_close()


def backend(url: str, **kw: Any) -> OpenAIBackend:
    return OpenAIBackend(check_url(url), "qwen2.5-coder-7b", kw.pop("fim", "auto"), **kw)


PROMPT = [special(QWEN.prefix), Segment("x = 1\n"), special(QWEN.suffix), Segment(""),
          special(QWEN.middle)]


def test_streams_a_completion_with_the_fim_prompt_as_text(server, monkeypatch):
    script, url = server
    monkeypatch.setenv("SLM_LSP_API_KEY", "sekret")
    b = backend(url)
    assert b.fim == QWEN  # read from the server's tokenizer: each FIM token is one token
    gen = b.generate(PROMPT, max_tokens=16)
    assert gen.text == "def main():\n" and gen.stop_reason == "eog"
    path, body, headers = script.requests[-1]
    assert path == "/v1/completions"
    assert body["prompt"] == "<|fim_prefix|>x = 1\n<|fim_suffix|><|fim_middle|>"
    assert body["stream"] is True and body["temperature"] == 0 and body["max_tokens"] == 16
    assert body["model"] == "qwen2.5-coder-7b" and "<|endoftext|>" in body["stop"]
    assert headers["Authorization"] == "Bearer sekret"


def test_forced_text_ends_the_prompt(server):
    script, url = server
    backend(url, fim="qwen2.5-coder").generate(PROMPT, max_tokens=4, forced="    ret")
    assert script.requests[-1][1]["prompt"].endswith("<|fim_middle|>    ret")


def test_a_stop_rule_closes_the_stream(server):
    script, url = server
    script.pieces = ["a\n"] + ["more"] * 50
    script.delay = 0.02
    gen = backend(url, fim="qwen2.5-coder").generate(
        PROMPT, max_tokens=64, stop=lambda t: t.index("\n") if "\n" in t else None)
    assert gen.text == "a" and gen.stop_reason == "stop"
    assert script.closed_early.wait(3), "the server kept streaming after the stop"


@pytest.mark.parametrize("phase", ["streaming", "before the answer"])
def test_cancel_mid_stream_returns_at_once(server, phase):
    script, url = server
    script.pieces = ["x"] * 100
    script.delay = 0.05
    if phase != "streaming":
        script.header_delay = 3.0
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    start = time.monotonic()
    with pytest.raises(Cancelled):
        backend(url, fim="qwen2.5-coder").generate(PROMPT, max_tokens=100, cancel=cancel)
    assert time.monotonic() - start < 1.0
    assert script.closed_early.wait(3)


def test_chat_uses_the_chat_endpoint(server):
    script, url = server
    script.pieces = ["It ", "adds."]
    gen = backend(url, fim="qwen2.5-coder").chat([Message("user", "explain")], max_tokens=20)
    assert gen.text == "It adds."
    path, body, _ = script.requests[-1]
    assert path == "/v1/chat/completions" and body["messages"] == [{"role": "user",
                                                                   "content": "explain"}]


@pytest.mark.parametrize("fault", ["status", "garbage", "drop", "slow"])
def test_server_faults_are_server_errors(server, fault):
    script, url = server
    if fault == "status":
        script.status = 503
    elif fault == "garbage":
        script.raw = b"<html>not json"
    elif fault == "drop":
        script.drop_after = 2
    else:
        script.delay = 1.0
    b = backend(url, fim="qwen2.5-coder", read_timeout_s=0.3)
    with pytest.raises(ServerError) as info:
        b.generate(PROMPT, max_tokens=8)
    assert "127.0.0.1" in str(info.value) or "stream" in str(info.value)


def test_unreachable_server_is_a_server_error_quickly():
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    start = time.monotonic()
    with pytest.raises(ServerError, match="cannot be reached"):
        OpenAIBackend(check_url(f"http://127.0.0.1:{port}/v1"), "m", "qwen2.5-coder").generate(
            PROMPT, max_tokens=4)
    assert time.monotonic() - start < 1.0


def test_fim_auto_without_a_tokenizer_uses_the_model_name(server):
    script, url = server
    script.tokenizer = False
    assert OpenAIBackend(check_url(url), "bigcode/starcoder2-15b", "auto").fim == STARCODER
    with pytest.raises(BackendError, match="set slm.backend.fim"):
        OpenAIBackend(check_url(url), "my-model", "auto")
    assert guess_family("Qwen/Qwen2.5-Coder-7B") == QWEN and guess_family("Qwen2-7B") is None


def test_a_server_down_at_start_is_a_server_error_and_the_fallback_waits_for_it():
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    sock.close()
    with pytest.raises(ServerError):  # not "cannot tell the FIM tokens": it is down
        OpenAIBackend(check_url(url), "my-model", "auto")
    notes: list[str] = []
    fb = FallbackBackend(lambda: OpenAIBackend(check_url(url), "m", "auto"),
                         FakeBackend("local"), Breaker(), lambda k, m: notes.append(k))
    assert fb.fim == QWEN and notes == ["fallback"]  # the local model's tokens meanwhile
    assert fb.generate(PROMPT, max_tokens=8).text == "local"


# -- the circuit breaker and the fallback ------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_breaker_skips_the_server_then_tries_once_and_doubles():
    clock = Clock()
    b = Breaker(retry_s=10, max_retry_s=25, clock=clock)
    assert b.allows() and b.failed() and not b.allows()
    clock.now = 10
    assert b.allows() and not b.allows()  # one trial per wait
    assert not b.failed()  # still failing: the wait doubles
    clock.now = 29
    assert not b.allows()
    clock.now = 30
    assert b.allows()
    b.failed()
    assert b.wait_s == 25  # capped
    assert b.succeeded() and b.allows() and b.wait_s == 10


def test_fallback_answers_the_same_request_locally_and_reports_once(server):
    script, url = server
    notes: list[tuple[str, str]] = []
    local = FakeBackend("local answer", fim=STARCODER)
    fb = FallbackBackend(lambda: backend(url, fim="qwen2.5-coder"), local, Breaker(retry_s=60),
                         lambda k, m: notes.append((k, m)))
    assert fb.fim == QWEN
    assert fb.generate(PROMPT, max_tokens=32).text == "def main():\n" and fb.last.endswith(
        script.requests[-1][2]["Host"])
    script.status = 500
    assert fb.generate(PROMPT, max_tokens=32).text == "local answer"
    assert local.prompts[-1] == "<fim_prefix>x = 1\n<fim_suffix><fim_middle>"  # its own tokens
    sent = len(script.requests)
    fb.generate(PROMPT, max_tokens=32)  # breaker open: not even tried
    assert len(script.requests) == sent
    assert [k for k, _ in notes] == ["fallback"] and "HTTP 500" in notes[0][1]  # once
    assert fb.last == local.name


def test_fallback_comes_back_to_the_server():
    clock = Clock()
    state = {"up": False}
    notes: list[str] = []

    class Flaky(OpenAIBackend):
        def __init__(self) -> None:
            self._fim = QWEN

        @property
        def name(self) -> str:
            return "flaky"

        def generate(self, prompt, **kw):  # type: ignore[no-untyped-def,override]
            if not state["up"]:
                raise ServerError("down")
            return FakeBackend("remote").generate(prompt, **kw)

    fb = FallbackBackend(Flaky, FakeBackend("local"), Breaker(retry_s=5, clock=clock),
                         lambda k, m: notes.append(k), fim=QWEN)
    assert fb.generate(PROMPT, max_tokens=9).text == "local"
    state["up"] = True
    assert fb.generate(PROMPT, max_tokens=9).text == "local"  # still inside the wait
    clock.now = 5
    assert fb.generate(PROMPT, max_tokens=9).text == "remote"
    assert notes == ["fallback", "remote"] and fb.last == "flaky"


def test_translate_swaps_tokens_by_role_and_drops_missing_ones():
    deepseek = next(f for f in FAMILIES if f.name == "deepseek-coder")
    prompt = [special(QWEN.repo_name), Segment("r\n"), special(QWEN.file_sep), Segment("a.py\n"),
              *PROMPT]
    out = translate(prompt, QWEN, deepseek)
    assert "".join(s.text for s in out) == "r\na.py\n<｜fim▁begin｜>x = 1\n<｜fim▁hole｜><｜fim▁end｜>"
    codestral = next(f for f in FAMILIES if f.name == "codestral")
    with pytest.raises(BackendError, match="layout"):
        translate(prompt, QWEN, codestral)


# -- which hosts, settings ------------------------------------------------------------------


def test_loopback_is_judged_from_the_text():
    for host in ("127.0.0.1", "127.3.4.5", "::1", "[::1]", "localhost", "LOCALHOST.", "a.localhost"):
        assert is_loopback(host), host
    for host in ("10.0.0.1", "0.0.0.0", "example.com", "localhost.example.com", "127.0.0.1.nip.io"):
        assert not is_loopback(host), host


def test_other_hosts_need_the_users_allow_list(tmp_path, monkeypatch):
    monkeypatch.setenv("SLM_LSP_CONFIG_HOME", str(tmp_path))
    monkeypatch.delenv("SLM_LSP_ALLOWED_HOSTS", raising=False)
    with pytest.raises(HostNotAllowed) as info:
        check_url("http://inference.example.invalid:8000/v1")
    assert "inference.example.invalid" in str(info.value)
    assert str(tmp_path / "config.toml") in str(info.value)
    (tmp_path / "config.toml").write_text('allowed_hosts = ["Inference.Example.Invalid"]\n')
    ep = check_url("https://inference.example.invalid/v1/")
    assert (ep.scheme, ep.port, ep.base_path) == ("https", 443, "/v1")
    (tmp_path / "config.toml").write_text("allowed_hosts = [")  # broken file: nothing allowed
    with pytest.raises(HostNotAllowed, match="could not be read"):  # and the user hears why
        check_url("http://inference.example.invalid:8000/v1")
    monkeypatch.setenv("SLM_LSP_ALLOWED_HOSTS", "gpu1.corp, inference.example.invalid")
    assert check_url("http://inference.example.invalid:8000/v1").port == 8000


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/v1", "127.0.0.1:8080", "http://:80/v1",
                                 "http://user:pw@127.0.0.1/v1", "http://127.0.0.1:99999/v1"])
def test_malformed_urls_are_refused(url):
    with pytest.raises(BackendError):
        check_url(url)


def test_a_refused_host_keeps_the_local_model_and_says_why(tmp_path, monkeypatch):
    monkeypatch.setenv("SLM_LSP_CONFIG_HOME", str(tmp_path))
    monkeypatch.delenv("SLM_LSP_ALLOWED_HOSTS", raising=False)
    notes: list[tuple[str, str]] = []
    local = FakeBackend("x")
    chosen = with_large(BackendSettings(kind="openai", url="http://inference.example.invalid/v1"),
                        local, lambda k, m: notes.append((k, m)))
    assert chosen is local and notes[0][0] == "refused" and "not an allowed host" in notes[0][1]
    assert with_large(BackendSettings(), local, lambda k, m: None) is local


def test_backend_settings_parse_and_reject_bad_values():
    settings, problems = parse_settings({"backend": {"kind": "openai", "url": "http://127.0.0.1:8080/v1",
                                                     "fim": "starcoder", "readTimeoutMs": 2500}})
    assert not problems and settings.backend.kind == "openai" and settings.backend.read_timeout_ms == 2500
    settings, problems = parse_settings({"backend": {"kind": "cloud", "fim": "gpt"}})
    assert settings.backend.kind == "local" and len(problems) == 2


def test_keystrokes_route_to_the_local_model_and_warm_it(server):
    script, url = server
    local = FakeBackend("local", fim=STARCODER, can_warm=True, name="local.gguf")
    notes: list[str] = []
    router = Router(local, FallbackBackend(lambda: backend(url, fim="qwen2.5-coder"), local),
                    notify=lambda k, m: notes.append(m))
    assert router.route("large") is router and router.fim == QWEN  # prompts in the server's tokens
    sent = len(script.requests)
    assert router.route("keystroke").generate(PROMPT, max_tokens=8).text == "local"
    assert len(script.requests) == sent and router.last == "local.gguf"
    assert router.can_warm and router.warm(PROMPT) > 0
    assert local.warmed[-1].startswith("<fim_prefix>")  # in the local model's own tokens
    twin = router.spawn(1024)  # explanations: the same server, breaker and record of who served
    assert twin.large.breaker is router.large.breaker  # type: ignore[attr-defined]
    twin.chat([Message("user", "explain")], max_tokens=8)
    assert router.last == twin.last and router.last.endswith(script.requests[-1][2]["Host"])
    assert notes == ["last answer from local.gguf", f"last answer from {router.last}"]
    twin.close()
    assert not local.closed  # the twin shares the small model; its owner closes it
    everything = Router(local, FallbackBackend(lambda: backend(url, fim="qwen2.5-coder"), local),
                        keystrokes_small=False)
    assert everything.route("keystroke") is everything and not everything.can_warm


def test_the_engine_routes_by_request_kind(server):
    from slm_lsp.context import CursorContext
    from slm_lsp.engine import CompletionEngine
    from slm_lsp.settings import CompletionSettings

    script, url = server
    script.pieces = ["width * height"]
    local = FakeBackend("height * width")
    router = Router(local, FallbackBackend(lambda: backend(url, fim="qwen2.5-coder"), local))
    engine = CompletionEngine(router, CompletionSettings(token_healing=False))

    def ctx(invoked: bool) -> CursorContext:
        return CursorContext(prefix=f"def area{invoked}(width, height):\n    return ", suffix="\n",
                             path="a.py", language="python", uri="file:///a.py", line=1,
                             character=11, invoked=invoked)

    assert engine.complete(ctx(False)).text == "height * width"
    assert engine.complete(ctx(True)).text == "width * height"


def test_the_api_key_comes_from_the_environment_else_the_os_keyring(monkeypatch):
    import sys
    import types as pytypes

    from slm_lsp.backends.openai import api_key

    asked: list[tuple[str, str]] = []
    fake = pytypes.ModuleType("keyring")
    fake.get_password = lambda service, user: (asked.append((service, user)),  # type: ignore[attr-defined]
                                               "from-keyring" if user == "gpu1.corp" else None)[1]
    monkeypatch.setitem(sys.modules, "keyring", fake)
    monkeypatch.delenv("SLM_LSP_API_KEY", raising=False)
    assert api_key("gpu1.corp") == "from-keyring" and asked == [("slm-lsp", "gpu1.corp")]
    assert api_key("other.corp") is None
    monkeypatch.setenv("SLM_LSP_API_KEY", "from-env")
    assert api_key("gpu1.corp") == "from-env" and len(asked) == 2  # the keyring is not asked

    def locked(service: str, user: str) -> str:
        raise RuntimeError("the keyring is locked")

    fake.get_password = locked  # type: ignore[attr-defined]
    monkeypatch.delenv("SLM_LSP_API_KEY")
    assert api_key("gpu1.corp") is None
