"""The `slm-lsp` command: one module per sub-command, wired here.

Each sub-command module has ``add_parser(subparsers)``; a new sub-command is a
new module here and one entry in ``SUBCOMMANDS``.
"""

from __future__ import annotations

import argparse
import os
import sys

from .. import __version__
from . import bench, complete, context, demo, doctor, explain, index, model, serve

SUBCOMMANDS = (serve, complete, context, doctor, model, index, explain, bench, demo)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="slm-lsp",
        description="Private, offline code completion from a local model, as a language server.",
    )
    parser.add_argument("--version", action="version", version=f"slm-lsp {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in SUBCOMMANDS:
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `slm-lsp` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:  # the benchmark parses its own arguments
        return bench.run(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    os.umask(os.umask(0o077) | 0o077)  # what slm-lsp writes (caches, models, logs) is the user's only
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
