"""`python -m slm_lsp.bench.hover`: how long a hover explanation takes right after the editor
opens a repository, the way a user meets it.

For each dev-set repository a fresh server starts (a temporary cache home that shares the
installed models, so no index, no explanation cache and no saved state), and as soon as the
model is loaded the client opens ``--files`` of the repository's largest source files, one
after another, and hovers the name of a function defined in each (the first one after the
file's first quarter), without waiting for the index. Each hover is timed from request to
answer; the file records whether the explanation came from the model, whether it was cut
short, and whether the server was still building its index at that moment. With
``--context similar`` the server builds its embedding index during the hovers (the slowest
case); the default runs the shipped settings.
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
from .cli import DEFAULT_DEVSET, devset_repos
from .client import BenchServer
from .machine import commit, machine
from .memory import hover_spot
from .run import load_sources
from .targets import percentile

ROOT = Path(__file__).resolve().parents[2]
HOVER_TIMEOUT_S = 120.0
TIMED = ("model", "cached", "cut short", "none")
"""Answers the explainer ran for ("none": it ran and gave nothing usable)."""


def _kind(value: str) -> str:
    """What a hover's text says about its explanation."""
    if "*No explanation" in value:
        return "none"
    if "· cached*" in value:
        return "cached"
    if "cut short by the time budget" in value:
        return "cut short"
    if "*slm-lsp ·" in value:
        return "model"
    return "header only"


async def hover_repo(root: Path, home: Path, files: int, context: str | None) -> dict[str, Any]:
    """One fresh server on ``root``: the hovers and what each one returned."""
    texts = load_sources(root)
    chosen = sorted(texts, key=lambda rel: -texts[rel].count("\n"))[:files]
    (home / "models").symlink_to(models_dir().resolve(), target_is_directory=True)
    settings: dict[str, Any] = {"index": {"enabled": True}}
    if context:
        settings["index"]["context"] = context
    server = BenchServer(root, settings, home / "server.log",
                         env=dict(os.environ, SLM_LSP_HOME=str(home)), progress=True)
    hovers: list[dict[str, Any]] = []
    await server.start()
    try:
        started = time.monotonic()
        for rel in chosen:
            lines = texts[rel].split("\n")
            server.open(rel, texts[rel])
            spot = hover_spot(lines)
            building = bool(server.progress_reports) and not server.progress_ends
            sent = time.perf_counter()
            try:
                answer = await asyncio.wait_for(server.client.text_document_hover_async(
                    types.HoverParams(text_document=types.TextDocumentIdentifier(
                        uri=server.uri_of(rel)), position=spot)), HOVER_TIMEOUT_S)
                value = answer.contents.value if answer is not None and isinstance(
                    answer.contents, types.MarkupContent) else ""
                error = None
            except Exception as exc:  # noqa: BLE001 - recorded, the run goes on
                value, error = "", f"{type(exc).__name__}: {exc}"
            hovers.append({
                "file": rel, "line": spot.line + 1, "name": _name_at(lines, spot),
                "seconds": round(time.perf_counter() - sent, 2),
                "after_start_s": round(time.monotonic() - started, 1),
                "index_building": building, "explanation": _kind(value), "error": error,
                "chars": len(value)})
    finally:
        await server.stop()
    return {"files": chosen, "hovers": hovers, "index_ends": server.progress_ends}


def _name_at(lines: list[str], spot: types.Position) -> str:
    text = lines[spot.line][spot.character:]
    return text.split("(")[0].strip()


def _tagged(repos: dict[str, Any]) -> list[dict[str, Any]]:
    """Every repository's hovers, each with its repository's name (``repo``)."""
    return [{**h, "repo": name} for name, repo in repos.items() for h in repo["hovers"]]


def summarize(hovers: list[dict[str, Any]]) -> dict[str, Any]:
    """p50/p95 of the hovers the explainer ran for (a name the server has no definition for
    is answered at once with nothing: not a hover to time), of the first such hover of each
    server, and the counts of each kind of answer."""
    explained = [h for h in hovers if h["error"] is None and h["explanation"] in TIMED]
    times = [h["seconds"] for h in explained]
    firsts: dict[str, float] = {}
    for h in explained:
        firsts.setdefault(h["repo"], h["seconds"])
    kinds: dict[str, int] = {}
    for h in hovers:
        kinds[h["explanation"]] = kinds.get(h["explanation"], 0) + 1
    return {"hovers": len(hovers), "p50_s": percentile(times, 0.5), "p95_s": percentile(times, 0.95),
            "first_p50_s": percentile(list(firsts.values()), 0.5),
            "while_building": sum(h["index_building"] for h in hovers),
            "errors": sum(h["error"] is not None for h in hovers), "explanations": kinds}


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(prog="python -m slm_lsp.bench.hover",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--devset", type=Path, default=DEFAULT_DEVSET)
    parser.add_argument("--files", type=int, default=4, help="files opened and hovered per repository")
    parser.add_argument("--context", choices=("definitions", "similar", "both"),
                        help="slm.index.context for the servers (default: the shipped setting)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "hover.json")
    parser.add_argument("--summarize", action="store_true",
                        help="only recompute the summary of the results file --out")
    args = parser.parse_args(argv)
    if args.summarize:
        done = json.loads(args.out.read_text(encoding="utf-8"))
        done["summary"] = summarize(_tagged(done["repos"]))
        args.out.write_text(json.dumps(done, indent=2) + "\n", encoding="utf-8")
        sys.stderr.write(json.dumps(done["summary"]) + "\n")
        return 0
    command = "python -m slm_lsp.bench.hover " + " ".join(argv if argv is not None else sys.argv[1:])
    out: dict[str, Any] = {"command": command, "commit": commit(ROOT), "machine": machine(),
                           "repos": {}}
    for repo in devset_repos(args.devset, None):
        with tempfile.TemporaryDirectory(prefix="slm-hover-") as home:
            result = asyncio.run(hover_repo(repo.root, Path(home), args.files, args.context))
        out["repos"][repo.name] = result
        sys.stderr.write(f"{repo.name}: {json.dumps(result['hovers'])}\n")
    out["summary"] = summarize(_tagged(out["repos"]))
    args.out.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    sys.stderr.write(json.dumps(out["summary"]) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
