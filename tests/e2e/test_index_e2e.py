"""The repository index in the real server: background build with progress, slm.search,
the watcher and unsaved edits, and completions answering while the index builds.

Real server subprocess, real embedder, real model. The index cache lives in a
temporary SLM_LSP_HOME; the model stays in the default cache and is passed by path.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from .conftest import SERVER, client_capabilities, inline_params, open_doc, server_env, track_status

pytestmark = [pytest.mark.model, pytest.mark.embedder, pytest.mark.asyncio(loop_scope="module")]

HOME = Path(tempfile.mkdtemp(prefix="slm-index-e2e-home-"))
WORKSPACE = Path(tempfile.mkdtemp(prefix="slm-index-e2e-ws-")) / "project"
SOURCES = ("pathspec.py", "gitignore.py", "pattern.py", "util.py", "patterns/gitwildmatch.py",
           "patterns/gitignore/base.py", "patterns/gitignore/basic.py",
           "patterns/gitignore/spec.py")
STATE: dict[str, Any] = {}


def make_workspace() -> None:
    """A project made of real files of the installed `pathspec` package, plus a secret."""
    import pathspec

    package = Path(pathspec.__file__).parent
    for rel in SOURCES:
        target = WORKSPACE / "pathspec" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(package / rel, target)
    (WORKSPACE / ".env").write_text("NORMALIZE_FILE_TOKEN=sk-do-not-leak\n")


def progress_ends(client: LanguageClient) -> list[types.WorkDoneProgressEnd]:
    """Every `end` the client received."""
    return [v for values in client.progress_reports.values() for v in values
            if isinstance(v, types.WorkDoneProgressEnd)]


async def search(client: LanguageClient, query: str, k: int = 5) -> list[dict[str, Any]]:
    """Run `slm.search` and return its rows."""
    answer = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="slm.search", arguments=[query, k]))
    assert set(answer) == {"results"}
    return answer["results"]


async def search_until(client: LanguageClient, query: str, path: str, timeout: float) -> float:
    """Seconds until `slm.search` returns a chunk of `path`; fails after `timeout`."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if any(row["path"] == path for row in await search(client, query)):
            return time.monotonic() - start
        await asyncio.sleep(0.3)
    raise AssertionError(f"{path} not found by {query!r} within {timeout}s")


@pytest_lsp.fixture(scope="module", config=ClientServerConfig(
    server_command=SERVER, server_env=server_env(SLM_LSP_HOME=str(HOME))))
async def client(lsp_client: LanguageClient, model_installed: Path):
    make_workspace()
    states = track_status(lsp_client)
    STATE["states"] = states
    await lsp_client.initialize_session(types.InitializeParams(
        capabilities=client_capabilities(),
        root_uri=WORKSPACE.as_uri(),
        initialization_options={"slm": {"model": {"path": str(model_installed)},
                                        "completion": {"maxLines": 4},
                                        "index": {"context": "both"}}},
    ))
    STATE["initialized_at"] = time.monotonic()
    yield
    await lsp_client.shutdown_session()
    shutil.rmtree(HOME, ignore_errors=True)
    shutil.rmtree(WORKSPACE.parent, ignore_errors=True)


async def test_completion_answers_while_the_index_builds(client: LanguageClient):
    states = STATE["states"]
    deadline = time.monotonic() + 120
    seen = lambda state: any(s["state"] == state for s in states)  # noqa: E731
    while not (seen("ready") and seen("indexing")):
        assert time.monotonic() < deadline, f"model not ready or no indexing status: {states}"
        assert not seen("error"), states
        await asyncio.sleep(0.05)
    uri = (WORKSPACE / "scratch.py").as_uri()
    open_doc(client, uri, "from pathspec.util import normalize_file\n\n\n"
                          "def relative_paths(files, separators):\n    ")
    building = not progress_ends(client)
    start = time.monotonic()
    result = await client.text_document_inline_completion_async(inline_params(uri, 4, 4))
    assert isinstance(result, types.InlineCompletionList)
    assert building, "the index finished before the model was ready; nothing was tested"
    print(f"completion during indexing: {[i.insert_text for i in result.items]!r} "
          f"in {time.monotonic() - start:.2f}s")


async def test_build_reports_progress_and_saves(client: LanguageClient):
    deadline = time.monotonic() + 600
    while not progress_ends(client):
        assert time.monotonic() < deadline, "indexing did not finish"
        await asyncio.sleep(0.2)
    print(f"indexing took {time.monotonic() - STATE['initialized_at']:.1f}s: "
          f"{progress_ends(client)[0].message}")
    values = next(iter(client.progress_reports.values()))
    assert isinstance(values[0], types.WorkDoneProgressBegin)
    assert isinstance(values[-1], types.WorkDoneProgressEnd)
    assert "files" in (values[-1].message or "")
    from indexer import persist
    from slm_lsp.paths import index_dir

    with mock.patch.dict(os.environ, {"SLM_LSP_HOME": str(HOME)}):
        assert persist.exists(index_dir(WORKSPACE))
    deadline = time.monotonic() + 5
    while STATE["states"][-1]["state"] != "ready":  # the status bar goes back to the model
        assert time.monotonic() < deadline, STATE["states"][-3:]
        await asyncio.sleep(0.05)


async def test_search_finds_a_file_and_never_a_secret(client: LanguageClient):
    rows = await search(client, "normalize a file path to use POSIX separators", k=5)
    assert rows and {"path", "start_line", "end_line", "score", "symbol"} <= set(rows[0])
    assert "pathspec/util.py" in [r["path"] for r in rows]
    rows = await search(client, "NORMALIZE_FILE_TOKEN sk-do-not-leak", k=10)
    assert all(r["path"] != ".env" for r in rows)


async def test_completion_after_indexing_answers_with_context(client: LanguageClient):
    uri = (WORKSPACE / "pathspec" / "usage.py").as_uri()
    text = ("from pathspec.util import normalize_file\n\n\n"
            "def clean_paths(files, separators=None):\n"
            '    """Normalize every file path."""\n    ')
    open_doc(client, uri, text)
    timings = []
    for _ in range(2):  # the second request in the same region reuses the retrieved context
        start = time.monotonic()
        result = await client.text_document_inline_completion_async(inline_params(uri, 5, 4))
        timings.append(time.monotonic() - start)
        assert isinstance(result, types.InlineCompletionList)
    print(f"completion with repository context: {[i.insert_text for i in result.items]!r}, "
          f"{', '.join(f'{t:.2f}s' for t in timings)}")


async def test_new_file_on_disk_is_found_within_seconds(client: LanguageClient):
    target = WORKSPACE / "tools" / "shipping.py"
    target.parent.mkdir()
    target.write_text(
        "def compute_parcel_shipping_cost(weight_kg, zone):\n"
        '    """Shipping cost of a parcel by weight and destination zone."""\n'
        "    base = {'eu': 4.5, 'world': 12.0}[zone]\n"
        "    return round(base + 1.25 * weight_kg, 2)\n")
    took = await search_until(client, "parcel shipping cost by weight and zone",
                              "tools/shipping.py", timeout=15)
    print(f"watcher: new file searchable after {took:.1f}s")


async def test_unsaved_edits_are_indexed_after_a_pause(client: LanguageClient):
    uri = (WORKSPACE / "tools" / "draft.py").as_uri()
    open_doc(client, uri, "")
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
        content_changes=[types.TextDocumentContentChangeWholeDocument(
            text="def convert_celsius_to_kelvin_scale(celsius):\n    return celsius + 273.15\n")]))
    took = await search_until(client, "convert celsius to kelvin scale", "tools/draft.py",
                              timeout=20)
    print(f"unsaved edit searchable after {took:.1f}s")


async def test_reindex_starts_a_build_with_progress(client: LanguageClient):
    before = len(progress_ends(client))
    answer = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="slm.reindex", arguments=[]))
    assert answer == {"started": True}
    deadline = time.monotonic() + 120
    while len(progress_ends(client)) == before:
        assert time.monotonic() < deadline, "reindex did not finish"
        await asyncio.sleep(0.2)
