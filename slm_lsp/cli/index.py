"""`slm-lsp index` and `slm-lsp search`: build and query a repository index.

Results go to stdout (one JSON line with `--json`), progress and errors to
stderr. Handlers return an exit code: 0 on success, 1 on failure, 130 when
interrupted (an interrupted build keeps what it finished).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO

from indexer.index import IndexProgress, IndexStats, RepoIndex

from ..paths import index_dir


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    """Add the `index` and `search` commands."""
    p_index = subparsers.add_parser(
        "index", help="build or update the repository index",
        description="Index a repository for retrieval (incremental: unchanged files are reused).")
    p_index.add_argument("path", nargs="?", default=".", metavar="PATH",
                         help="repository root (default: the current folder)")
    p_index.add_argument("--json", action="store_true", help="print one JSON line of stats")
    p_index.add_argument("--max-file-kb", type=int, default=512, metavar="KB",
                         help="skip files larger than this (default: 512)")
    p_index.set_defaults(func=cmd_index)

    p_search = subparsers.add_parser(
        "search", help="query the repository index",
        description="Print the chunks of an indexed repository that best match QUERY.")
    p_search.add_argument("query", metavar="QUERY")
    p_search.add_argument("--root", default=".", metavar="PATH",
                          help="repository root (default: the current folder)")
    p_search.add_argument("-k", type=int, default=8, metavar="K",
                          help="number of results (default: 8)")
    p_search.add_argument("--json", action="store_true", help="print one JSON line")
    p_search.set_defaults(func=cmd_search)


def _open_index(root: Path, max_file_kb: int = 512) -> RepoIndex:
    """A RepoIndex of `root` with the real embedder using every core."""
    from indexer.embedder import SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder(threads=os.cpu_count())
    return RepoIndex(root, index_dir(root), embedder=embedder, max_file_kb=max_file_kb)


class ProgressBar:
    """Draws build progress on a stream: redrawn in place on a terminal, else every few seconds."""

    def __init__(self, stream: TextIO | None = None, width: int = 28) -> None:
        """A bar writing to `stream` (default: stderr)."""
        self.stream = stream or sys.stderr
        self.width = width
        self.tty = self.stream.isatty()
        self.last = 0.0
        self.drawn = False

    def __call__(self, event: IndexProgress) -> None:
        """Show one progress event."""
        now = time.monotonic()
        final = event.phase == "done"
        if not self.tty and not final and now - self.last < 5.0:
            return
        self.last = now
        total = max(event.files_total, 1)
        filled = int(self.width * min(event.files_done, total) / total)
        bar = "#" * filled + "-" * (self.width - filled)
        line = (f"[{bar}] {event.files_done}/{event.files_total} files  "
                f"{event.chunks} chunks  {event.elapsed:5.1f}s  {event.phase}")
        if self.tty:
            self.stream.write("\r" + line + "\x1b[K")
            if final:
                self.stream.write("\n")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


def _build(index: RepoIndex, progress: ProgressBar) -> tuple[IndexStats | None, bool]:
    """Run the build in a worker thread so Ctrl-C cancels it cleanly."""
    cancel = threading.Event()
    result: dict[str, Any] = {}

    def work() -> None:
        try:
            result["stats"] = index.build(progress=progress, cancel=cancel)
        except Exception as exc:  # noqa: BLE001 - reported by the caller
            result["error"] = exc

    worker = threading.Thread(target=work, name="index-build")
    worker.start()
    interrupted = False
    while worker.is_alive():
        try:
            worker.join(0.2)
        except KeyboardInterrupt:
            interrupted = True
            cancel.set()
            sys.stderr.write("\ninterrupted: saving what is done...\n")
    if "error" in result:
        raise result["error"]
    return result.get("stats"), interrupted


def cmd_index(args: argparse.Namespace) -> int:
    """Build or update the index of PATH; prints stats."""
    root = Path(args.path).expanduser().resolve()
    if not root.is_dir():
        sys.stderr.write(f"error: {root} is not a folder\n")
        return 1
    from indexer.embedder import EmbedderUnavailable

    index = _open_index(root, args.max_file_kb)
    try:
        stats, interrupted = _build(index, ProgressBar())
    except EmbedderUnavailable as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    if stats is None:
        return 1
    if args.json:
        sys.stdout.write(json.dumps(_stats_json(stats)) + "\n")
    else:
        langs = ", ".join(f"{k} {v}" for k, v in stats.languages.items()) or "none"
        sys.stdout.write(f"indexed {root}: {stats.files} files ({langs}), {stats.chunks} chunks, "
                         f"{stats.reused} unchanged, {stats.seconds:.1f}s\n"
                         f"index: {index.cache_dir}\n")
    return 130 if interrupted else 0


def _stats_json(stats: IndexStats) -> dict[str, Any]:
    """The `index --json` line."""
    return {"files": stats.files, "chunks": stats.chunks, "languages": stats.languages,
            "seconds": stats.seconds, "reused": stats.reused}


def cmd_search(args: argparse.Namespace) -> int:
    """Print the best chunks for QUERY from the index of --root."""
    root = Path(args.root).expanduser().resolve()
    from indexer import persist
    from indexer.embedder import EmbedderUnavailable

    if not persist.exists(index_dir(root)):
        sys.stderr.write(f"error: no index for {root}; run `slm-lsp index {root}` first\n")
        return 1
    index = _open_index(root)
    if not index.load():
        sys.stderr.write(f"error: the index of {root} is unusable; run `slm-lsp index {root}`\n")
        return 1
    try:
        results = index.search(args.query, k=args.k)
    except EmbedderUnavailable as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    rows = [{"path": r.chunk.path, "start_line": r.chunk.start_line,
             "end_line": r.chunk.end_line, "score": round(r.score, 6), "symbol": r.chunk.symbol}
            for r in results]
    if args.json:
        sys.stdout.write(json.dumps({"results": rows}) + "\n")
        return 0
    for row in rows:
        symbol = f"  {row['symbol']}" if row["symbol"] else ""
        sys.stdout.write(f"{row['path']}:{row['start_line']}-{row['end_line']}  "
                         f"{row['score']:.4f}{symbol}\n")
    if not rows:
        sys.stderr.write("no results\n")
    return 0
