"""`slm-lsp doctor`: what the environment has and lacks."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .. import __version__
from .common import model_options, settings_from_args, setup_logging


def cmd_doctor(args: argparse.Namespace) -> int:
    """Report the environment: model, threads, llama.cpp, grammars, embedder, caches."""
    setup_logging("warning")
    from indexer.languages import supported

    from ..models import DEFAULT_MODEL, ModelError, resolve_model_path, verify_installed
    from ..paths import cache_root

    settings = settings_from_args(args)
    ok = True
    rows: list[tuple[str, str]] = [("slm-lsp", __version__), ("python", sys.version.split()[0]),
                                   ("cache", str(cache_root()))]
    try:
        path = resolve_model_path(settings.model.name, settings.model.path)
        if settings.model.path:
            rows.append(("model", f"{path} (configured path)"))
        else:
            result = verify_installed(settings.model.name or DEFAULT_MODEL)
            rows.append(("model", f"{result.path} sha256 {result.sha256} "
                                  f"{'verified' if result.ok else 'MISMATCH: ' + str(result.problem)}"))
            ok = ok and result.ok
    except ModelError as exc:
        rows.append(("model", f"MISSING: {exc}"))
        ok = False
    try:
        from ..backends.native import cpu_variants, default_threads, system_info

        rows.append(("threads", str(settings.model.threads or default_threads())))
        info = system_info()
        variants = cpu_variants()
        rows.append(("llama.cpp", f"{info} (CPU kernels: {', '.join(variants)})" if variants else info))
    except Exception as exc:  # report, don't crash: this is the diagnosis tool
        rows.append(("llama.cpp", f"UNAVAILABLE: {exc}"))
        ok = False
    rows.append(("tree-sitter", ", ".join(supported()) or "no grammars"))
    try:
        from indexer.embedder import model_dir

        rows.append(("embedder", str(model_dir())))
    except Exception as exc:
        rows.append(("embedder", f"UNAVAILABLE: {exc}"))
    if args.json:
        print(json.dumps({"ok": ok, **dict(rows)}))
    else:
        width = max(len(k) for k, _ in rows)
        for key, value in rows:
            print(f"{key:<{width}}  {value}")
        print("ok" if ok else "problems found (see above)")
    return 0 if ok else 1


def add_parser(subparsers: Any) -> None:
    """Register `slm-lsp doctor`."""
    p = subparsers.add_parser("doctor", help="report the environment and model status")
    p.add_argument("--json", action="store_true")
    model_options(p)
    p.set_defaults(func=cmd_doctor)
