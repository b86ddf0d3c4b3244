"""Nothing leaves the machine: a whole session under a network audit hook."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from .conftest import (
    client_capabilities,
    inline_params,
    open_doc,
    real_file,
    server_env,
    track_status,
    wait_ready,
)

HERE = Path(__file__).parent
AUDIT_LOG = HERE / ".." / ".." / ".pytest-audit.log"
AUDIT_LOG = AUDIT_LOG.resolve()

pytestmark = [pytest.mark.model]


def test_the_audit_hook_catches_a_real_connection_attempt(tmp_path):
    """The guard itself must be able to fail: an outbound connect is recorded and refused."""
    log = tmp_path / "audit.log"
    code = (
        "import runpy, socket, sys; sys.argv=['x']; "
        f"runpy.run_path({str(HERE / 'audited_server.py')!r}, run_name='audit'); "
        "s = socket.socket(); s.settimeout(0.2)\n"
        "try:\n    s.connect(('192.0.2.1', 80))\nexcept PermissionError as e:\n    print('refused')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=server_env(SLM_AUDIT_LOG=str(log)),
                         capture_output=True, text=True, timeout=60)
    assert "refused" in out.stdout
    assert "192.0.2.1" in log.read_text()


@pytest_lsp.fixture(config=ClientServerConfig(
    server_command=[sys.executable, str(HERE / "audited_server.py"), "serve"],
    server_env=server_env(SLM_AUDIT_LOG=str(AUDIT_LOG)),
))
async def audited(lsp_client: LanguageClient, model_installed):
    AUDIT_LOG.unlink(missing_ok=True)
    states = track_status(lsp_client)
    init = await lsp_client.initialize_session(types.InitializeParams(
        capabilities=client_capabilities(), root_uri=real_file().parent.as_uri(),
        initialization_options={"slm": {"completion": {"timeoutMs": 120000}}},
    ))
    await wait_ready(states)
    lsp_client.server_capabilities = init.capabilities
    yield  # the test itself shuts the session down, under audit


@pytest.mark.asyncio
async def test_a_whole_session_makes_no_outside_network_access(audited: LanguageClient):
    client = audited
    uri = real_file().with_name("privacy.py").as_uri()
    open_doc(client, uri, "import os\n\n\ndef config_dir():\n    return os.path.join(\n")
    result = await client.text_document_inline_completion_async(inline_params(uri, 4, 24))
    assert result is not None
    if client.server_capabilities.hover_provider:  # every feature the server offers
        await client.text_document_hover_async(types.HoverParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=3, character=5)))
    await client.shutdown_session()
    attempts = AUDIT_LOG.read_text() if AUDIT_LOG.exists() else ""
    assert attempts == "", f"network access attempted:\n{attempts}"
