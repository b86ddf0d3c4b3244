"""Bad models give clear errors and a server that keeps answering (no model needed)."""

from __future__ import annotations

import asyncio

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from .conftest import SERVER, client_capabilities, inline_params, open_doc, server_env, track_status

pytestmark = pytest.mark.asyncio


async def start(client: LanguageClient, model_path: str, root) -> list:
    states = track_status(client)
    await client.initialize_session(types.InitializeParams(
        capabilities=client_capabilities(), root_uri=root.as_uri(),
        initialization_options={"slm": {"model": {"path": model_path}, "index": {"enabled": False}}},
    ))
    for _ in range(200):
        if states and states[-1]["state"] == "error":
            break
        await asyncio.sleep(0.05)
    return states


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER, server_env=server_env()))
async def client(lsp_client: LanguageClient):
    yield
    await lsp_client.shutdown_session()


@pytest.mark.parametrize("kind", ["missing", "not-gguf", "corrupt-gguf"])
async def test_bad_model_is_a_clear_error_and_the_server_stays_up(client: LanguageClient, tmp_path, kind):
    path = tmp_path / "model.gguf"
    if kind == "not-gguf":
        path.write_text("this is not a model")
    elif kind == "corrupt-gguf":
        path.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\xff" * 4096)
    states = await start(client, str(path), tmp_path)
    assert states and states[-1]["state"] == "error", states
    assert any(m.type == types.MessageType.Error for m in client.messages)
    message = states[-1]["message"]
    assert str(path) in message or "model" in message
    uri = (tmp_path / "a.py").as_uri()
    open_doc(client, uri, "x = 1\n")
    with pytest.raises(Exception, match="slm-lsp"):
        await client.text_document_inline_completion_async(inline_params(uri, 0, 4))
    # Still alive and still answering: a settings change is accepted.
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(
        settings={"slm": {"completion": {"maxTokens": 10}}}))
    await asyncio.sleep(0.2)
    assert client._server.returncode is None
