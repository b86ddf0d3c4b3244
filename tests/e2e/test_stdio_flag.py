"""`slm-lsp serve --stdio`: the flag vscode-languageclient appends for a stdio server.

Without it being accepted the VS Code extension never started the server (argparse
exited with "unrecognized arguments: --stdio"). No model is needed: the server
answers `initialize` before the model loads.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from .conftest import SERVER, client_capabilities, server_env


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[*SERVER, "--stdio"],
                                              server_env=server_env()))
async def client(lsp_client: LanguageClient):
    yield
    await lsp_client.shutdown_session()


@pytest.mark.asyncio
async def test_a_server_started_with_stdio_answers_initialize(client: LanguageClient, tmp_path):
    result = await client.initialize_session(types.InitializeParams(
        capabilities=client_capabilities(), root_uri=tmp_path.as_uri(),
        initialization_options={"slm": {"index": {"enabled": False}}}))
    assert result.server_info is not None and result.server_info.name == "slm-lsp"
    assert result.capabilities.inline_completion_provider


def test_stdio_and_tcp_together_are_refused_with_a_message() -> None:
    done = subprocess.run([sys.executable, "-m", "slm_lsp", "serve", "--stdio", "--tcp", "2087"],
                          capture_output=True, text=True, timeout=60, env=server_env())
    assert done.returncode == 2 and "exclude each other" in done.stderr
