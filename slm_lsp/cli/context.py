"""`slm-lsp context FILE LINE COL`: the repository context a completion there would get.

For users who wonder why a suggestion looks the way it does: prints each file section of
the context as the prompt holds it, and how many tokens it takes of the budget. The
definitions come from the repository's source files; similar chunks (``--mode both`` or
``similar``) from the saved index of the repository, if `slm-lsp index` or the server has
built one (searching it loads the embedding model).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from .common import find_root, model_options, settings_from_args, setup_logging


def cmd_context(args: argparse.Namespace) -> int:
    """Print the context at FILE:LINE:COL (1-based line and column)."""
    setup_logging(args.log_level)
    from indexer import persist
    from indexer.languages import language_for_path
    from prompts.fim import fit_prefix

    from ..backends.base import BackendError
    from ..context import CursorContext, split_at
    from ..paths import index_dir
    from ..repo_context import DefinitionContext, RepoContext
    from ..retrieval import IndexRetriever
    from ..runtime import load_llama
    from ..symbols import SourceTree, resolver_for

    path = Path(args.file)
    try:
        text = path.read_text(encoding="utf-8")
        prefix, suffix = split_at(text, args.line - 1, args.col - 1)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        print(f"error: cannot use {path}: {exc}", file=sys.stderr)
        return 2
    root = Path(args.root).resolve() if args.root else find_root(path)
    settings = settings_from_args(args)
    try:
        backend = load_llama(settings.model)
    except BackendError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    count = backend.count_tokens
    mode = args.mode or settings.index.context
    budget = args.budget if args.budget is not None else settings.index.context_tokens
    fitted = fit_prefix(prefix, settings.completion.max_prefix_tokens, count)
    rel = path.resolve().relative_to(root).as_posix() if path.resolve().is_relative_to(root) \
        else path.name
    ctx = CursorContext(uri=path.resolve().as_uri(), path=rel, language=language_for_path(path),
                        prefix=prefix, suffix=suffix, line=args.line - 1,
                        character=args.col - 1, band=prefix.count("\n") - fitted.count("\n"))
    definitions = DefinitionContext(resolver_for(SourceTree(str(root))), count)
    similar = None
    if mode != "definitions" and persist.exists(index_dir(root)):
        from indexer.index import RepoIndex

        index = RepoIndex(root, index_dir(root))
        if index.load():
            similar = IndexRetriever(count, budget_ms=10_000)
            similar.index = index
    if mode != "definitions" and similar is None:
        print("note: no saved index of this repository; similar chunks left out "
              "(build one with `slm-lsp index`)", file=sys.stderr)
    started = time.perf_counter()
    files = RepoContext(definitions, similar, mode)(ctx, budget)
    elapsed = (time.perf_counter() - started) * 1000
    tokens = sum(count(f"{f.path}\n{f.text}") + 1 for f in files)
    backend.close()
    if args.json:
        print(json.dumps({"root": str(root), "mode": mode, "budget": budget,
                          "tokens": tokens, "ms": round(elapsed, 1),
                          "files": [{"path": f.path, "text": f.text} for f in files]}))
        return 0
    for f in files:
        print(f"<|file_sep|>{f.path}\n{f.text}", end="" if f.text.endswith("\n") else "\n")
    print(f"({len(files)} sections, {tokens} of {budget} tokens, mode {mode}, "
          f"{elapsed:.0f} ms)", file=sys.stderr)
    return 0


def add_parser(subparsers: Any) -> None:
    """Register `slm-lsp context`."""
    p = subparsers.add_parser("context", help="print the repository context a completion at "
                              "FILE LINE COL (1-based) would get")
    p.add_argument("file")
    p.add_argument("line", type=int)
    p.add_argument("col", type=int)
    p.add_argument("--root", help="repository folder (default: the nearest with .git)")
    p.add_argument("--mode", choices=("definitions", "similar", "both"),
                   help="default: slm.index.context")
    p.add_argument("--budget", type=int, help="context tokens (default: slm.index.contextTokens)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--log-level", default="warning")
    model_options(p)
    p.set_defaults(func=cmd_context)
