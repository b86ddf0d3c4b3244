"""Region warm-ups with the real server and model: a first request at a new line of an
open file is fast once the regions around the cursor are warm."""

from __future__ import annotations

import asyncio
import time
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

SETTINGS = {"completion": {"warmRegions": 3, "timeoutMs": 120000, "maxPrefixTokens": 1536,
                           "maxSuffixTokens": 256}, "index": {"enabled": False}}
"""Budgets pinned at the defaults they were set for (1,536/256): region warm-ups pay most
with long prompts, and this test's rows and bounds assume 64-line bands."""
CURSOR = 700
"""Where the editor reports the cursor in jinja2/compiler.py (about 2,000 lines)."""


@pytest_lsp.fixture(scope="module", config=ClientServerConfig(server_command=SERVER,
                                                              server_env=server_env()))
async def client(lsp_client: LanguageClient, model_installed):
    states = track_status(lsp_client)
    lsp_client.set_configuration(SETTINGS, section="slm")
    await lsp_client.initialize_session(types.InitializeParams(
        capabilities=client_capabilities(), root_uri=real_file().parent.as_uri(),
        initialization_options={"slm": SETTINGS}))
    await wait_ready(states)
    yield
    await lsp_client.shutdown_session()


async def warm_state(client: LanguageClient) -> Any:
    return await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="slm.warmState"))


async def test_a_new_line_near_the_cursor_is_fast_once_its_region_is_warm(client: LanguageClient):
    path = real_file().with_name("compiler.py")
    lines = path.read_text().split("\n")
    uri = path.with_name("regions.py").as_uri()
    open_doc(client, uri, "\n".join(lines))
    indent = len(lines[CURSOR]) - len(lines[CURSOR].lstrip())
    client.protocol.notify("slm/cursor", {"textDocument": {"uri": uri},
                                          "position": {"line": CURSOR, "character": indent}})
    started = time.monotonic()
    while True:  # the cursor's own warm-up, then 3 regions: the cursor's and both neighbours
        state = await warm_state(client)
        if state["warmed"] >= 3 and not state["pending"]:
            break
        assert time.monotonic() - started < 600, state
        await asyncio.sleep(2)
    assert state["focus"] == {"uri": uri, "line": CURSOR}

    async def first_request(row: int) -> float:
        start = time.monotonic()
        result = await client.text_document_inline_completion_async(
            inline_params(uri, row, len(lines[row])))
        assert result is not None
        return time.monotonic() - start

    warming = time.monotonic() - started
    cold = await first_request(1500)  # far away: not warmed, and it replaces the live cache
    near = await first_request(CURSOR - 40)  # 40 lines up: read back from a warmed region
    print(f"cursor warm-up and {state['warmed']} regions: {warming:.0f} s; first request far "
          f"away {cold:.2f} s, 40 lines from the cursor {near:.2f} s")
    assert near < min(3.0, cold / 3), (cold, near)
