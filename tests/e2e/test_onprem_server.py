"""The on-prem backend end to end: the real server and a real LSP client against a real
OpenAI-compatible server on loopback (llama-cpp-python's, serving the default model),
which is killed and started again; and a host that is not allowed, traced."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from .conftest import (
    SERVER,
    client_capabilities,
    inline_params,
    open_doc,
    real_file,
    server_env,
    track_status,
    wait_ready,
)

pytestmark = [pytest.mark.model, pytest.mark.asyncio(loop_scope="module")]

HERE = Path(__file__).parent
WORK = Path(tempfile.mkdtemp(prefix="slm-onprem-e2e-"))
SERVER_LOG = WORK / "llama-server.log"
RETRY_S = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


PORT = _free_port()
URL = f"http://127.0.0.1:{PORT}/v1"


class InferenceServer:
    """llama-cpp-python's server on PORT, started and killed by the tests."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, model: Path) -> None:
        log = SERVER_LOG.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "openai_server.py"), "--model", str(model),
             "--host", "127.0.0.1", "--port", str(PORT), "--n_ctx", "4096", "--verbose", "False"],
            stdout=log, stderr=log, env=server_env())
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, SERVER_LOG.read_text()[-2000:]
            try:
                with urllib.request.urlopen(f"{URL}/models", timeout=1) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        raise AssertionError("the inference server did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def requests(self, path: str) -> int:
        """How many requests for ``path`` the server's access log shows."""
        return SERVER_LOG.read_text(errors="replace").count(f'"POST {path} HTTP')


INFERENCE = InferenceServer()


def notes(client: LanguageClient) -> list[tuple[int, str]]:
    """The `window/showMessage` notifications the client received."""
    return [(m.type, m.message) for m in client.messages]


def _settings() -> dict[str, Any]:
    return {"model": {"path": str(_model())},
            # A CPU-served model reads a long prompt for seconds before its first token.
            "backend": {"kind": "openai", "url": URL, "retryAfterS": RETRY_S,
                        "readTimeoutMs": 60000},
            "completion": {"timeoutMs": 120000, "warmOnCursor": False, "warmRegions": 0},
            "index": {"enabled": False}, "explain": {"maxTokens": 64}}


@pytest_lsp.fixture(scope="module", config=ClientServerConfig(
    server_command=SERVER, server_env=server_env(SLM_LSP_HOME=str(WORK / "home"))))
async def client(lsp_client: LanguageClient, model_installed):
    INFERENCE.start(model_installed)
    states = track_status(lsp_client)

    caps = client_capabilities()
    caps.text_document.hover = types.HoverClientCapabilities(  # type: ignore[union-attr]
        content_format=[types.MarkupKind.Markdown])
    lsp_client.set_configuration(_settings(), section="slm")
    await lsp_client.initialize_session(types.InitializeParams(
        capabilities=caps, root_uri=real_file().parent.as_uri(),
        initialization_options={"slm": _settings()}))
    await wait_ready(states, timeout=120)
    lsp_client.states = states  # type: ignore[attr-defined]
    yield
    await lsp_client.shutdown_session()
    INFERENCE.kill()


def _doc(client: LanguageClient, name: str, body: str) -> str:
    uri = (WORK / name).as_uri()
    open_doc(client, uri, body)
    return uri


def invoked(uri: str, line: int, character: int) -> types.InlineCompletionParams:
    """An explicitly invoked request (Alt+\\ in VS Code), which the router sends to the server."""
    params = inline_params(uri, line, character)
    params.context.trigger_kind = types.InlineCompletionTriggerKind.Invoked
    return params


LONG = "".join(f"def helper_{i}(value):\n    return value * {i} + {i}\n\n\n" for i in range(120))


async def test_invoked_completions_come_from_the_server_and_keystrokes_stay_local(
        client: LanguageClient):
    states = client.states  # type: ignore[attr-defined]
    assert f"127.0.0.1:{PORT}" in states[-1]["message"], states[-1]
    before = INFERENCE.requests("/v1/completions")
    uri = _doc(client, "area.py", "def area(width, height):\n    return \n")
    result = await client.text_document_inline_completion_async(invoked(uri, 1, 11))
    assert result is not None and len(result.items) == 1
    assert "width" in result.items[0].insert_text or "height" in result.items[0].insert_text
    assert INFERENCE.requests("/v1/completions") == before + 1
    other = _doc(client, "perimeter.py", "def perimeter(width, height):\n    return \n")
    result = await client.text_document_inline_completion_async(inline_params(other, 1, 11))
    assert result is not None and len(result.items) == 1  # typing: the local model answered
    assert INFERENCE.requests("/v1/completions") == before + 1
    assert not any("using the local model" in m for _, m in notes(client)), notes(client)


async def test_cancelling_closes_the_stream_at_once(client: LanguageClient):
    uri = _doc(client, "cancel.py", LONG + "def main():\n    ")
    pending = client.protocol.send_request(
        types.TEXT_DOCUMENT_INLINE_COMPLETION, inline_params(uri, LONG.count("\n") + 1, 4),
        msg_id="remote-cancel")
    await asyncio.sleep(1.0)  # the server is reading the ~3,000-token prompt
    start = time.monotonic()
    client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="remote-cancel"))
    with pytest.raises(Exception, match="(?i)cancel"):
        await asyncio.wrap_future(pending)
    assert time.monotonic() - start < 1.5
    await asyncio.sleep(0.5)
    assert "Disconnected from client" in SERVER_LOG.read_text(errors="replace")


async def test_hover_explanations_use_the_chat_endpoint(client: LanguageClient):
    before = INFERENCE.requests("/v1/chat/completions")
    text = "def add_tax(price, rate):\n    return price * (1 + rate)\n\n\nprint(add_tax(10, 0.2))\n"
    uri = _doc(client, "tax.py", text)
    hover = await client.text_document_hover_async(types.HoverParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(4, 8)))
    assert hover is not None
    value = hover.contents.value  # type: ignore[union-attr]
    assert "add_tax" in value and len(value) > 60, value
    assert INFERENCE.requests("/v1/chat/completions") == before + 1
    assert not any("using the local model" in m for _, m in notes(client)), notes(client)


async def test_an_unsure_keystroke_suggestion_is_escalated_to_the_server(client: LanguageClient):
    states = client.states  # type: ignore[attr-defined]

    async def keystroke(name: str) -> None:
        uri = _doc(client, name, "def volume(width, height, depth):\n    return \n")
        result = await client.text_document_inline_completion_async(inline_params(uri, 1, 11))
        assert result is not None and len(result.items) == 1

    async def change(backend: dict[str, Any]) -> None:
        """New backend settings, and the reload they cause, done."""
        settings = _settings()
        settings["backend"].update(backend)
        seen = len(states)
        client.set_configuration(settings, section="slm")
        client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=None))
        await until(lambda: any(s["state"] == "loading" for s in states[seen:]), 30)
        await wait_ready(states, timeout=120)

    async def last_answer_from(name: str) -> None:
        await until(lambda: f"last answer from {name}" in states[-1]["message"], 5)

    # Every suggestion is less sure than probability 1: each keystroke is asked again of the
    # server after the local model answered it.
    await change({"escalateBelow": 1.0})
    before = INFERENCE.requests("/v1/completions")
    await keystroke("escalated.py")
    assert INFERENCE.requests("/v1/completions") == before + 1
    await last_answer_from(f"served model at 127.0.0.1:{PORT}")
    await change({})  # escalation off again (the default): typing stays local
    await keystroke("local.py")
    assert INFERENCE.requests("/v1/completions") == before + 1
    await last_answer_from("qwen2.5-coder-0.5b")


async def until(check: Any, timeout: float) -> None:
    """Wait for ``check()`` to hold (AssertionError after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.05)


async def test_a_killed_server_falls_back_to_the_local_model_then_comes_back(client: LanguageClient):
    states = client.states  # type: ignore[attr-defined]
    short = LONG[:LONG.index("def helper_30(")]  # ~700 tokens: seconds for the server here
    uri = _doc(client, "killed.py", short + "def total(items):\n    ")
    line = short.count("\n") + 1
    pending = asyncio.ensure_future(client.text_document_inline_completion_async(
        inline_params(uri, line, 4)))
    await asyncio.sleep(1.0)
    INFERENCE.kill()  # mid-request: the stream breaks off
    killed = time.monotonic()
    result = await asyncio.wait_for(pending, 90)
    assert result is not None and len(result.items) == 1  # answered by the local model
    # The broken stream is noticed at once, not after readTimeoutMs (60 s here): what
    # remains is one cold local request (a few seconds on a quiet machine).
    assert time.monotonic() - killed < 45, "the fallback waited for the read timeout"
    shown = notes(client)
    assert any(t == types.MessageType.Warning and "using the local model" in m for t, m in shown), shown
    assert any("using the local model" in x["message"] for x in states), states
    # the status names the local model ("using the local model X: ..." or "last answer from X")
    assert "qwen2.5-coder-0.5b" in states[-1]["message"], states[-1]
    print(f"fallback answer {time.monotonic() - killed:.1f} s after the kill")

    # The breaker is open: the next request does not wait for the dead server.
    other = _doc(client, "quick.py", "def square(x):\n    return x * \n")
    start = time.monotonic()
    result = await client.text_document_inline_completion_async(inline_params(other, 1, 15))
    assert result is not None
    assert time.monotonic() - start < 10

    # The server comes back; after the breaker's wait a request uses it again.
    INFERENCE.start(_model())
    await asyncio.sleep(RETRY_S + 0.5)
    before = INFERENCE.requests("/v1/completions")
    back = _doc(client, "back.py", "def cube(x):\n    return x * x * \n")
    result = await client.text_document_inline_completion_async(invoked(back, 1, 19))
    assert result is not None
    assert INFERENCE.requests("/v1/completions") == before + 1
    assert f"last answer from served model at 127.0.0.1:{PORT}" in states[-1]["message"], states[-1]


def _model() -> Path:
    from slm_lsp.models import DEFAULT_MODEL, resolve_model_path

    return resolve_model_path(DEFAULT_MODEL, "")


# -- a host that is not allowed --------------------------------------------------------------

BLOCKED = "http://inference.example.invalid:8000/v1"


async def _session_against(blocked_url: str, audit_log: Path, **env: str) -> list[tuple[int, str]]:
    """One audited server session configured for ``blocked_url``: its messages, after
    a completion request (answered by the local model)."""
    from pytest_lsp import make_test_lsp_client

    client = make_test_lsp_client()
    states = track_status(client)

    settings = {**_settings(), "backend": {"kind": "openai", "url": blocked_url}}
    await client.start_io(sys.executable, str(HERE / "audited_server.py"), "serve",
                          env=server_env(SLM_AUDIT_LOG=str(audit_log),
                                         SLM_LSP_HOME=str(WORK / "home"),
                                         SLM_LSP_CONFIG_HOME=str(WORK / "config"), **env))
    try:
        await client.initialize_session(types.InitializeParams(
            capabilities=client_capabilities(), root_uri=real_file().parent.as_uri(),
            initialization_options={"slm": settings}))
        await wait_ready(states, timeout=120)
        uri = _doc(client, "blocked.py", "def area(width, height):\n    return \n")
        result = await client.text_document_inline_completion_async(inline_params(uri, 1, 11))
        assert result is not None and len(result.items) == 1  # the local model answered
    finally:
        await client.shutdown_session()
        await client.stop()
    return notes(client)


async def test_a_host_that_is_not_allowed_is_never_contacted():
    log = WORK / "audit-refused.log"
    log.unlink(missing_ok=True)
    shown = await _session_against(BLOCKED, log, SLM_LSP_ALLOWED_HOSTS="")
    assert any("inference.example.invalid" in m and "not an allowed host" in m
               for _, m in shown), shown
    # No name lookup, no connection: the audit hook saw nothing leave loopback.
    assert not log.exists() or log.read_text() == "", log.read_text()


async def test_the_trace_would_see_a_contact_with_an_allowed_host():
    """The control: once the user allows the host, the same session tries to reach it
    (the audit hook records and refuses that), so an empty trace above means something."""
    log = WORK / "audit-allowed.log"
    log.unlink(missing_ok=True)
    shown = await _session_against(BLOCKED, log, SLM_LSP_ALLOWED_HOSTS="inference.example.invalid")
    assert "inference.example.invalid" in log.read_text()
    assert any("using the local model" in m for _, m in shown), shown


def teardown_module() -> None:
    INFERENCE.kill()
    if os.environ.get("SLM_KEEP_E2E") is None:
        import shutil

        shutil.rmtree(WORK, ignore_errors=True)
