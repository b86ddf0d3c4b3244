"""`slm-lsp complete FILE LINE COL`: one suggestion from the command line."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from .common import model_options, settings_from_args, setup_logging


def cmd_complete(args: argparse.Namespace) -> int:
    """Print the suggestion at FILE:LINE:COL (1-based line and column)."""
    setup_logging(args.log_level)
    from indexer.languages import language_for_path

    from ..backends.base import BackendError
    from ..context import CursorContext, split_at
    from ..engine import CompletionEngine
    from ..runtime import load_llama

    path = Path(args.file)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"error: cannot read {path}: {exc}", file=sys.stderr)
        return 2
    try:
        prefix, suffix = split_at(text, args.line - 1, args.col - 1)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    settings = settings_from_args(args)
    try:
        backend = load_llama(settings.model)
        engine = CompletionEngine(backend, settings.completion, n_ctx=settings.model.context_size)
    except BackendError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    ctx = CursorContext(
        uri=path.resolve().as_uri(), path=path.name, language=language_for_path(path),
        prefix=prefix, suffix=suffix, line=args.line - 1, character=args.col - 1, invoked=True,
    )
    start = time.perf_counter()
    suggestion = engine.complete(ctx)
    elapsed = time.perf_counter() - start
    if args.json:
        print(json.dumps({"text": suggestion.text, "seconds": round(elapsed, 3),
                          "multiline": bool(suggestion.shape and suggestion.shape.multiline)}))
    else:
        print(suggestion.text)
        print(f"({elapsed:.2f} s)", file=sys.stderr)
    backend.close()
    return 0


def add_parser(subparsers: Any) -> None:
    """Register `slm-lsp complete`."""
    p = subparsers.add_parser("complete", help="print the suggestion at FILE LINE COL (1-based)")
    p.add_argument("file")
    p.add_argument("line", type=int)
    p.add_argument("col", type=int)
    p.add_argument("--json", action="store_true", help="print one JSON line")
    p.add_argument("--log-level", default="warning")
    model_options(p)
    p.set_defaults(func=cmd_complete)
