"""The `slm-lsp` command: serve, complete, doctor, model, index, search, ..."""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from . import __version__

log = logging.getLogger("slm_lsp")


def _setup_logging(level: str, log_file: str | None = None) -> None:
    handler: logging.Handler = (
        logging.FileHandler(log_file) if log_file else logging.StreamHandler(sys.stderr)
    )
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    for name in ("slm_lsp", "indexer", "prompts"):
        logging.getLogger(name).setLevel(level.upper())


def _protect_stdout() -> Any:
    """The protocol's own handle on stdout; fd 1 itself then points at stderr.

    Whatever else writes to stdout (a stray print, a C library) lands in the
    log instead of corrupting the JSON-RPC stream.
    """
    protocol_out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return protocol_out


def tcp_address(spec: str) -> tuple[str, int]:
    """``[HOST:]PORT`` as (host, port); the host defaults to this machine only."""
    host, _, port = spec.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"  # [::1]:2087 names an IPv6 host
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected [HOST:]PORT with a port from 1 to 65535, "
                                         f"got {spec!r}")
    return host, int(port)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the language server on stdio (default) or TCP."""
    _setup_logging(args.log_level, args.log_file)
    from .memory import return_large_frees
    from .server import build_server

    return_large_frees()
    server = build_server()
    if args.tcp:
        host, port = args.tcp
        if not _loopback(host):
            log.warning("listening on %s: any machine that reaches this port can read completions "
                        "and search results from your repository", host)
        log.info("slm-lsp %s serving on tcp %s:%d (pid %d)", __version__, host, port, os.getpid())
        try:
            server.start_tcp(host, port)
        except OSError as exc:  # port taken, unknown host, no permission
            log.error("cannot listen on %s:%d: %s", host, port, exc)
            return 1
        return 0
    protocol_out = _protect_stdout()
    log.info("slm-lsp %s serving on stdio (pid %d)", __version__, os.getpid())
    server.start_io(sys.stdin.buffer, protocol_out)
    return 0


def _settings_from_args(args: argparse.Namespace) -> Any:
    from .settings import parse_settings

    raw: dict[str, Any] = {"model": {}}
    if getattr(args, "model_path", None):
        raw["model"]["path"] = args.model_path
    if getattr(args, "model", None):
        raw["model"]["name"] = args.model
    if getattr(args, "threads", None):
        raw["model"]["threads"] = args.threads
    settings, problems = parse_settings(raw)
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)
    return settings


def cmd_complete(args: argparse.Namespace) -> int:
    """Print the suggestion at FILE:LINE:COL (1-based line and column)."""
    _setup_logging(args.log_level)
    from indexer.languages import language_for_path

    from .backends.base import BackendError
    from .context import CursorContext, split_at
    from .engine import CompletionEngine
    from .runtime import load_llama

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
    settings = _settings_from_args(args)
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


def cmd_doctor(args: argparse.Namespace) -> int:
    """Report the environment: model, threads, llama.cpp, grammars, embedder, caches."""
    _setup_logging("warning")
    from indexer.languages import supported

    from .models import DEFAULT_MODEL, ModelError, resolve_model_path, verify_installed
    from .paths import cache_root

    settings = _settings_from_args(args)
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
        from .backends.llama import default_threads, system_info

        rows.append(("threads", str(settings.model.threads or default_threads())))
        rows.append(("llama.cpp", system_info()))
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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="slm-lsp",
        description="Private, offline code completion from a local model, as a language server.",
    )
    parser.add_argument("--version", action="version", version=f"slm-lsp {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("serve", help="run the language server (stdio by default)")
    p.add_argument("--tcp", metavar="[HOST:]PORT", type=tcp_address,
                   help="listen on TCP instead of stdio (host default 127.0.0.1)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument("--log-file", help="log here instead of stderr")
    p.set_defaults(func=cmd_serve)

    def model_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--model", help="known model name (see `slm-lsp model list`)")
        p.add_argument("--model-path", help="any GGUF file with FIM tokens")
        p.add_argument("--threads", type=int, help="CPU threads (default: all cores)")

    p = sub.add_parser("complete", help="print the suggestion at FILE LINE COL (1-based)")
    p.add_argument("file")
    p.add_argument("line", type=int)
    p.add_argument("col", type=int)
    p.add_argument("--json", action="store_true", help="print one JSON line")
    p.add_argument("--log-level", default="warning")
    model_options(p)
    p.set_defaults(func=cmd_complete)

    p = sub.add_parser("doctor", help="report the environment and model status")
    p.add_argument("--json", action="store_true")
    model_options(p)
    p.set_defaults(func=cmd_doctor)

    from .bench import add_bench_parser
    from .cli_explain import add_explain_parser
    from .cli_index import add_index_parsers
    from .cli_model import add_model_parser
    from .demo import add_demo_parser

    for add in (add_model_parser, add_index_parsers, add_explain_parser, add_bench_parser,
                add_demo_parser):
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `slm-lsp` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
