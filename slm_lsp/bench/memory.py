"""`python -m slm_lsp.bench.memory REPO`: resident memory of one server through a session.

The real server, driven by the benchmark's LSP client: the model loads, the server
indexes REPO itself (a fresh index in a temporary cache home that shares the installed
models), then answers one completion and one hover in REPO's largest source file, warms the
regions around the completion (`slm.completion.warmRegions`), and stays idle until the
explanation context is freed (`slm.explain.releaseAfterS`).
Prints one JSON object with the resident memory (VmRSS) and its peak (VmHWM) after each
stage, in MiB, and the CPU the idle server used at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from lsprotocol import types

from ..paths import models_dir
from ..settings import ExplainSettings
from .client import BenchServer
from .run import load_sources

INDEX_TIMEOUT_S = 1800.0
IDLE_MARGIN_S = 3.0
"""Seconds past `explain.releaseAfterS` before the idle stage is measured."""
IDLE_CPU_S = 5.0
"""Seconds over which the idle server's CPU use is sampled."""
WARM_TIMEOUT_S = 900.0
"""Longest wait for the region warm-ups after the hover."""


def hover_spot(lines: list[str]) -> types.Position:
    """The name of the first function defined after the file's first quarter."""
    start = len(lines) // 4
    for row in [*range(start, len(lines)), *range(start)]:
        code = lines[row].lstrip()
        if code.startswith("def "):
            return types.Position(line=row, character=lines[row].index("def ") + 4)
    return types.Position(line=0, character=0)


async def measure(root: Path, home: Path) -> dict[str, Any]:
    """Run the session and return the memory after each stage."""
    texts = load_sources(root)
    if not texts:
        raise SystemExit(f"error: no source files with a grammar under {root}")
    rel = max(texts, key=lambda r: texts[r].count("\n"))
    lines = texts[rel].split("\n")
    (home / "models").symlink_to(models_dir().resolve(), target_is_directory=True)
    env = dict(os.environ, SLM_LSP_HOME=str(home))
    server = BenchServer(root, {"completion": {"timeoutMs": 600000}, "index": {"enabled": True}},
                         home / "server.log", env=env, progress=True)
    stages: dict[str, Any] = {}
    started = time.perf_counter()

    def record(stage: str) -> None:
        stages[stage] = {**server.rss_mib(), "seconds": round(time.perf_counter() - started, 1)}

    await server.start()
    try:
        record("model loaded")
        deadline = time.monotonic() + INDEX_TIMEOUT_S
        while not server.progress_ends and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        record(f"indexed ({server.progress_ends[-1] if server.progress_ends else 'timed out'})")
        server.open(rel, texts[rel])
        row = len(lines) // 2
        while row < len(lines) - 1 and not lines[row].strip():
            row += 1
        answer = await server.complete(rel, row, len(lines[row]) - len(lines[row].lstrip()))
        record("completion" + (f" (error: {answer.error})" if answer.error else ""))
        spot = hover_spot(lines)
        await asyncio.wait_for(server.client.text_document_hover_async(types.HoverParams(
            text_document=types.TextDocumentIdentifier(uri=server.uri_of(rel)),
            position=spot)), 600)
        record("hover")
        hovered = time.monotonic()
        warmed = await wait_warm_ups(server)
        record(f"after the region warm-ups ({warmed} regions)")
        await asyncio.sleep(max(0.0, ExplainSettings.release_after_s + IDLE_MARGIN_S
                                - (time.monotonic() - hovered)))
        idle = "idle after the hover (explanation context freed)"
        record(idle)
        stages[idle]["cpu"] = await server.idle_cpu(IDLE_CPU_S, settle=0.0)
    finally:
        await server.stop()
    return {"repo": str(root), "file": rel, "completion_line": row + 1,
            "hover_line": spot.line + 1, "stages": stages}


async def wait_warm_ups(server: BenchServer) -> int:
    """Wait until the server has no region warm-ups due (`slm.warmState`); the number of
    regions it warmed."""
    deadline = time.monotonic() + WARM_TIMEOUT_S
    while True:
        state: Any = await server.client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="slm.warmState"))
        if not state["pending"] or time.monotonic() > deadline:
            return int(state["warmed"])
        await asyncio.sleep(2.0)


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(prog="python -m slm_lsp.bench.memory",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("repo", type=Path, help="repository folder")
    args = parser.parse_args(argv)
    if not args.repo.is_dir():
        sys.stderr.write(f"error: {args.repo} is not a folder\n")
        return 2
    with tempfile.TemporaryDirectory(prefix="slm-memory-") as home:
        result = asyncio.run(measure(args.repo.resolve(), Path(home)))
    sys.stdout.write(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
