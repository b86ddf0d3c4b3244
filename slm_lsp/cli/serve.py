"""`slm-lsp serve`: the language server on stdio or TCP."""

from __future__ import annotations

import argparse
import atexit
import ipaddress
import logging
import os
import shutil
import sys
from typing import Any

from .. import __version__
from ..paths import private_tempdir
from .common import protect_stdout, setup_logging

log = logging.getLogger("slm_lsp")


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
    setup_logging(args.log_level, args.log_file)
    from ..features import build_server
    from ..memory import return_large_frees

    return_large_frees()
    if args.tcp and args.stdio:
        log.error("--tcp and --stdio exclude each other")
        return 2
    server = build_server()
    scratch = private_tempdir()  # libraries' temporary files stay in the user's cache
    if scratch is not None:
        atexit.register(shutil.rmtree, scratch, True)
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
    protocol_out = protect_stdout()
    log.info("slm-lsp %s serving on stdio (pid %d)", __version__, os.getpid())
    server.start_io(sys.stdin.buffer, protocol_out)
    return 0


def add_parser(subparsers: Any) -> None:
    """Register `slm-lsp serve`."""
    p = subparsers.add_parser("serve", help="run the language server (stdio by default)")
    p.add_argument("--tcp", metavar="[HOST:]PORT", type=tcp_address,
                   help="listen on TCP instead of stdio (host default 127.0.0.1)")
    p.add_argument("--stdio", action="store_true",
                   help="talk LSP over stdin and stdout (the default; accepted because LSP "
                        "clients such as vscode-languageclient pass it)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument("--log-file", help="log here instead of stderr")
    p.set_defaults(func=cmd_serve)
