"""The real server with the real default model, driven by a real LSP client (pytest-lsp)."""

from __future__ import annotations

import asyncio
import time

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from prompts.fim import all_special_texts

from .conftest import (
    SERVER,
    client_capabilities,
    inline_params,
    masked,
    open_doc,
    real_file,
    server_env,
    track_status,
    wait_ready,
)

pytestmark = [pytest.mark.model, pytest.mark.asyncio(loop_scope="module")]

STATES: list = []


@pytest_lsp.fixture(scope="module", config=ClientServerConfig(server_command=SERVER,
                                                              server_env=server_env()))
async def client(lsp_client: LanguageClient, model_installed):
    STATES[:] = []
    STATES.extend([])  # keep the list object the handler appends to
    states = track_status(lsp_client)
    lsp_client.set_configuration({"completion": {"maxTokens": 48, "timeoutMs": 120000},
                             "index": {"enabled": False}}, section="slm")
    await lsp_client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities(),
            root_uri=real_file().parent.as_uri(),
            initialization_options={"slm": {"completion": {"maxLines": 4, "timeoutMs": 120000},
                                            "index": {"enabled": False}}},
        )
    )
    await wait_ready(states)
    STATES.append(states)
    yield
    await lsp_client.shutdown_session()


TARGET_LINES = (115, 160, 260)  # lines inside function bodies of jinja2/utils.py


async def test_masked_line_gets_a_clean_suggestion(client: LanguageClient):
    path = real_file()
    text = path.read_text()
    answered = []
    for n, line in enumerate(TARGET_LINES):
        doc, truth, indent = masked(text, line)
        uri = path.with_name(f"masked_{n}.py").as_uri()
        open_doc(client, uri, doc)
        result = await client.text_document_inline_completion_async(inline_params(uri, line, indent))
        assert result is not None and len(result.items) <= 1
        print(f"line {line}: truth={truth!r} suggestion="
              f"{result.items[0].insert_text if result.items else None!r}")
        if not result.items:
            # Allowed: a proposal that only repeats the code below is dropped. Which line
            # the model proposes that for depends on the CPU kernels (zen4 at line 115).
            continue
        suggestion = result.items[0].insert_text
        assert isinstance(suggestion, str) and suggestion.strip()
        answered.append(line)
        for special in all_special_texts():
            assert special not in suggestion
        following = doc.split("\n")[line + 1:]
        next_code = next((x.strip() for x in following if x.strip()), "")
        assert suggestion.strip() != next_code, "the suggestion repeats the line below"
        header = next(x for x in reversed(doc.split("\n")[:line]) if x.strip())
        if not header.rstrip().endswith(":"):
            assert "\n" not in suggestion  # a body line that opens no block: one line
        assert suggestion.count("\n") < 4  # maxLines
    assert len(answered) >= 2, f"suggestions only at lines {answered} of {TARGET_LINES}"


async def test_mid_line_gets_rest_of_line_without_repeating_it(client: LanguageClient):
    uri = real_file().with_name("midline.py").as_uri()
    open_doc(client, uri, "def area(width, height):\n    return width * height\n\n"
                          "print(area(3, ))\n")
    result = await client.text_document_inline_completion_async(inline_params(uri, 3, 14))
    assert result is not None
    for item in result.items:
        assert "\n" not in item.insert_text
        assert not item.insert_text.endswith("))")


async def test_completion_fallback_returns_one_item(client: LanguageClient):
    uri = real_file().with_name("fallback.py").as_uri()
    open_doc(client, uri, "import os\n\n\ndef home():\n    return os.path.\n")
    result = await client.text_document_completion_async(
        types.CompletionParams(text_document=types.TextDocumentIdentifier(uri=uri),
                               position=types.Position(line=4, character=19))
    )
    assert isinstance(result, types.CompletionList) and len(result.items) == 1
    item = result.items[0]
    assert item.text_edit is not None and item.text_edit.new_text.strip()


async def test_cancel_request_returns_promptly(client: LanguageClient):
    uri = real_file().with_name("cancel.py").as_uri()
    body = "".join(f"def helper_{i}(value):\n    return value + {i}\n\n\n" for i in range(60))
    open_doc(client, uri, body + "def main():\n    ")
    line = body.count("\n") + 1
    params = inline_params(uri, line, 4)
    pending = client.protocol.send_request(types.TEXT_DOCUMENT_INLINE_COMPLETION, params,
                                           msg_id="cancel-me")
    await asyncio.sleep(0.5)
    start = time.monotonic()
    client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="cancel-me"))
    with pytest.raises(Exception, match="(?i)cancel"):
        await asyncio.wrap_future(pending)
    assert time.monotonic() - start < 2, "the cancelled request was not answered promptly"
    # Generation stopped: the model is free for the next request within a second or two.
    other = real_file().with_name("after_cancel.py").as_uri()
    open_doc(client, other, "def square(x):\n    return x * \n")
    t0 = time.monotonic()
    result = await client.text_document_inline_completion_async(inline_params(other, 1, 15))
    assert result is not None
    assert time.monotonic() - t0 < 15


async def test_newer_request_supersedes_older_one(client: LanguageClient):
    uri = real_file().with_name("supersede.py").as_uri()
    text = "".join(f"def compute_{i}(a, b):\n    return a * b + {i}\n\n\n" for i in range(40))
    open_doc(client, uri, text + "def total(items):\n    ")
    line = text.count("\n") + 1
    first = asyncio.ensure_future(client.text_document_inline_completion_async(
        inline_params(uri, line, 4)))
    await asyncio.sleep(0.2)
    second = await client.text_document_inline_completion_async(inline_params(uri, line, 4))
    assert second is not None
    with pytest.raises(Exception, match="cancel"):
        await first


async def test_a_reported_cursor_is_ready_when_typing_starts_there(client: LanguageClient):
    """`slm/cursor` at a line far from the last suggestion: the warm-up evaluates the prompt
    there, so the first request at that line does not wait for it."""
    # A file no other test completes in, so that no cached prompt makes "cold" warm.
    path = real_file().with_name("compiler.py")
    lines = path.read_text().split("\n")
    uri = path.with_name("warm.py").as_uri()
    open_doc(client, uri, "\n".join(lines))
    near, far = 309, 940  # ~630 lines apart: the two prompts share nothing
    start = time.monotonic()
    await client.text_document_inline_completion_async(inline_params(uri, near, len(lines[near])))
    cold = time.monotonic() - start
    client.protocol.notify("slm/cursor", {"textDocument": {"uri": uri},
                                          "position": {"line": far, "character": len(lines[far])}})
    client.protocol.notify("slm/cursor", {"textDocument": {"uri": uri}})  # malformed: ignored
    await asyncio.sleep(max(5.0, 2 * cold))  # the user reads before typing
    start = time.monotonic()
    result = await client.text_document_inline_completion_async(
        inline_params(uri, far, len(lines[far])))
    warm = time.monotonic() - start
    print(f"first request at a far line: {cold:.2f} s cold, {warm:.2f} s after slm/cursor")
    assert result is not None
    assert warm < cold / 4, (cold, warm)
    assert client._server.returncode is None


async def test_coming_back_after_a_far_jump_reads_the_saved_state(client: LanguageClient):
    """A far jump saves the model state of the place left (`slm.model.kvSnapshots`); the
    first request back near it reads that state instead of evaluating the prompt again."""
    # Budgets pinned at the defaults this bound was set for (1,536/256): a saved state pays
    # when a prompt is long; with 512/64 a cold place costs about as much as reading one.
    configure(client, {"maxPrefixTokens": 1536, "maxSuffixTokens": 256})
    await asyncio.sleep(0.5)
    path = real_file().with_name("parser.py")  # no other test completes in it
    lines = path.read_text().split("\n")
    uri = path.with_name("jumps.py").as_uri()
    open_doc(client, uri, "\n".join(lines))

    async def first_request(row: int) -> tuple[float, object]:
        start = time.monotonic()
        result = await client.text_document_inline_completion_async(
            inline_params(uri, row, len(lines[row])))
        return time.monotonic() - start, result

    here, _ = await first_request(299)
    away, _ = await first_request(900)  # 600 lines down: nothing in common
    back, result = await first_request(304)
    print(f"first requests: {here:.2f} s, far away {away:.2f} s, back near the first {back:.2f} s")
    configure(client, {})
    assert result is not None
    # Reading the state back still evaluates the moved cursor's tail and generates the answer:
    # about a quarter of a cold request on a quiet machine (CI once measured 2.38 s against
    # 9.26 s), so the bound leaves room for a busy one; without the saved state it is ~1x.
    assert back < min(here, away) / 3, (here, away, back)


def configure(client: LanguageClient, completion: dict) -> None:
    """The module's settings with ``completion`` keys on top, sent as a change."""
    client.set_configuration({"completion": {"maxTokens": 48, "timeoutMs": 120000, **completion},
                              "index": {"enabled": False}}, section="slm")
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=None))


async def test_unknown_document_and_bad_position_are_clear_errors(client: LanguageClient):
    with pytest.raises(Exception, match="not open"):
        await client.text_document_inline_completion_async(
            inline_params("file:///nowhere/missing.py", 0, 0))
    uri = real_file().with_name("small.py").as_uri()
    open_doc(client, uri, "a = 1\n")
    with pytest.raises(Exception, match="outside the document"):
        await client.text_document_inline_completion_async(inline_params(uri, 50, 0))


async def test_malformed_messages_do_not_kill_the_server(client: LanguageClient):
    stdin = client._server.stdin  # the raw pipe to the server
    for raw in (b"{not json", b'{"jsonrpc": "2.0", "id": 991, "method": "textDocument/hover"}',
                b'{"jsonrpc": "2.0", "id": 992, "method": "textDocument/inlineCompletion", '
                b'"params": {"textDocument": 5}}'):
        stdin.write(b"Content-Length: %d\r\n\r\n" % len(raw) + raw)
    await stdin.drain()
    await asyncio.sleep(0.5)
    uri = real_file().with_name("alive.py").as_uri()
    open_doc(client, uri, "def double(x):\n    return \n")
    result = await client.text_document_inline_completion_async(inline_params(uri, 1, 11))
    assert result is not None
    assert client._server.returncode is None


async def test_settings_change_applies_without_restart(client: LanguageClient):
    pid = client._server.pid
    client.set_configuration({"completion": {"maxTokens": "lots"}, "index": {"enabled": False}},
                             section="slm")
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=None))
    for _ in range(50):
        if any("maxTokens" in m.message for m in client.messages):
            break
        await asyncio.sleep(0.1)
    assert any("maxTokens" in m.message for m in client.messages)
    assert client._server.pid == pid and client._server.returncode is None
    client.set_configuration({"completion": {"maxTokens": 48, "timeoutMs": 120000},
                             "index": {"enabled": False}}, section="slm")
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=None))
