"""`slm-lsp bench`: hands its arguments to the benchmark package (`slm_lsp.bench`).

The benchmark is not part of the product; it is imported only when this
sub-command runs.
"""

from __future__ import annotations

from typing import Any

PROG = "slm-lsp bench"


def add_parser(subparsers: Any) -> None:
    """List `slm-lsp bench` in the help; `slm_lsp.cli.main` hands it over before parsing."""
    subparsers.add_parser("bench", add_help=False,
                          help="completion benchmark on a repository or the dev set "
                               "(real server; `slm-lsp bench --help`)")


def run(argv: list[str]) -> int:
    """Run the benchmark with ``argv`` (everything after `slm-lsp bench`)."""
    from ..bench.cli import main

    return main(argv, PROG)
