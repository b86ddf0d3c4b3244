"""`slm-lsp explain FILE LINE COL`: print the hover text for a position (1-based)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

log = logging.getLogger(__name__)


def _write(text: str) -> None:
    sys.stdout.write(text + "\n")


def cmd_explain(args: argparse.Namespace) -> int:
    """Resolve the symbol at FILE:LINE:COL and print its header and explanation."""
    from indexer.languages import language_for_path

    from ..backends.base import BackendError
    from ..explain.cache import ExplainCache
    from ..explain.explainer import Explainer
    from ..explain.router import ModelRouter
    from ..explain.target import header_markdown
    from ..paths import workspace_dir
    from ..runtime import load_llama
    from ..symbols import SourceTree
    from .common import find_root, settings_from_args, setup_logging

    setup_logging(args.log_level)
    file = Path(args.file).resolve()
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        sys.stderr.write(f"error: cannot read {file}: {exc}\n")
        return 2
    root = Path(args.root).resolve() if args.root else find_root(file)
    settings = settings_from_args(args)
    explain = settings.explain
    if args.explain_model or args.explain_model_path:
        from dataclasses import replace

        explain = replace(explain, model_name=args.explain_model or "",
                          model_path=args.explain_model_path or "")
    if args.max_tokens:
        from dataclasses import replace

        explain = replace(explain, max_tokens=args.max_tokens)
    shared: dict[str, object] = {}

    def completion_model(timeout: float) -> object:
        if "backend" not in shared and timeout > 0:
            shared["backend"] = load_llama(settings.model)
        return shared.get("backend")

    from ..models import ModelError, resolve_model_path

    try:  # names the model in cache keys, so a cached answer needs no model at all
        shared_path: Path | None = resolve_model_path(settings.model.name, settings.model.path)
    except ModelError:
        shared_path = None
    models = ModelRouter(completion_model, shared_path=shared_path)  # type: ignore[arg-type]
    models.configure(explain, settings.model)
    cache = ExplainCache(None if args.no_cache else workspace_dir(root) / "explain")
    explainer = Explainer(SourceTree(str(root)), models, cache, explain)
    lines = text.split("\n")
    if not 1 <= args.line <= len(lines) or not 1 <= args.col <= len(lines[args.line - 1]) + 1:
        sys.stderr.write(f"error: {args.line}:{args.col} is outside {file}\n")
        return 2
    start = time.perf_counter()
    target = explainer.target_at(str(file), text, language_for_path(file), args.line - 1,
                                 args.col - 1)
    if target is None:
        sys.stderr.write("no symbol at that position\n")
        return 1
    header = header_markdown(target, str(root))
    try:
        result = explainer.explain(target, budget_s=args.budget)
    except BackendError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    finally:
        models.close()
    elapsed = time.perf_counter() - start
    if args.json:
        _write(json.dumps({"header": header, "explanation": result.text, "source": result.source,
                           "removed": result.removed, "problem": result.problem,
                           "seconds": round(elapsed, 3)}))
    else:
        _write(header)
        _write("")
        _write(result.text or f"(no explanation: {result.problem or 'none given'})")
        sys.stderr.write(f"({result.source}, {elapsed:.2f} s)\n")
    return 0


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The `explain` subcommand."""
    p = subparsers.add_parser("explain", help="print the hover explanation at FILE LINE COL (1-based)")
    p.add_argument("file")
    p.add_argument("line", type=int)
    p.add_argument("col", type=int)
    p.add_argument("--root", help="workspace root (default: the nearest folder with .git)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--no-cache", action="store_true", help="ignore and do not write the cache")
    p.add_argument("--budget", type=float, default=30.0, help="seconds of generation after the first token")
    p.add_argument("--max-tokens", type=int, help="override explain.maxTokens")
    p.add_argument("--model", help="completion model name (the default explainer)")
    p.add_argument("--model-path", help="completion model GGUF path")
    p.add_argument("--explain-model", help="known model name used only for explanations")
    p.add_argument("--explain-model-path", help="GGUF path used only for explanations")
    p.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    p.add_argument("--log-level", default="warning")
    p.set_defaults(func=cmd_explain)
