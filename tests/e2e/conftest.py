"""Shared set-up for end-to-end tests: the real server as a subprocess, a real LSP client."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient

ROOT = Path(__file__).resolve().parents[2]
SERVER = [sys.executable, "-m", "slm_lsp", "serve", "--log-level", "info"]


def server_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


def real_file() -> Path:
    """A real, unmodified source file that nobody on this project wrote."""
    import jinja2

    return Path(jinja2.__file__).parent / "utils.py"


def client_capabilities() -> types.ClientCapabilities:
    return types.ClientCapabilities(
        text_document=types.TextDocumentClientCapabilities(
            inline_completion=types.InlineCompletionClientCapabilities(),
            completion=types.CompletionClientCapabilities(),
            synchronization=types.TextDocumentSyncClientCapabilities(did_save=True),
        ),
        workspace=types.WorkspaceClientCapabilities(configuration=True),
        window=types.WindowClientCapabilities(work_done_progress=True, show_message=None),
    )


def track_status(client: LanguageClient) -> list[dict[str, Any]]:
    """Record `slm/status` notifications on the client."""
    states: list[dict[str, Any]] = []

    @client.feature("slm/status")
    def on_status(params: Any) -> None:
        states.append({"state": params.state, "message": params.message})

    return states


async def wait_ready(states: list[dict[str, Any]], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if states and states[-1]["state"] == "ready":
            return
        if states and states[-1]["state"] == "error":
            raise AssertionError(f"model failed to load: {states[-1]['message']}")
        await asyncio.sleep(0.05)
    raise AssertionError(f"server not ready after {timeout}s: {states}")


def open_doc(client: LanguageClient, uri: str, text: str, language: str = "python") -> None:
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id=language, version=1, text=text)
        )
    )


def inline_params(uri: str, line: int, character: int) -> types.InlineCompletionParams:
    return types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=types.Position(line=line, character=character),
        context=types.InlineCompletionContext(
            trigger_kind=types.InlineCompletionTriggerKind.Automatic
        ),
    )


def masked(text: str, line: int) -> tuple[str, str, int]:
    """The document with ``line`` emptied after its indentation: (doc, truth, indent)."""
    lines = text.split("\n")
    original = lines[line]
    indent = len(original) - len(original.lstrip())
    lines[line] = original[:indent]
    return "\n".join(lines), original[indent:], indent


@pytest.fixture(scope="session")
def model_installed() -> Path:
    """The default model, which `make test` installs before running the tests."""
    from slm_lsp.models import DEFAULT_MODEL, ModelError, resolve_model_path

    try:
        return resolve_model_path(DEFAULT_MODEL, "")
    except ModelError as exc:  # fail, don't skip: these tests are the product's proof
        pytest.fail(f"the default model is required for end-to-end tests: {exc}")
