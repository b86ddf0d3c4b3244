"""Helpers shared by the sub-commands: logging set-up, stdout protection, model settings."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from ..settings import LOGGERS


def setup_logging(level: str, log_file: str | None = None) -> None:
    handler: logging.Handler = (
        logging.FileHandler(log_file) if log_file else logging.StreamHandler(sys.stderr)
    )
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    for name in LOGGERS:
        logging.getLogger(name).setLevel(level.upper())


def protect_stdout() -> Any:
    """The protocol's own handle on stdout; fd 1 itself then points at stderr.

    Whatever else writes to stdout (a stray print, a C library) lands in the
    log instead of corrupting the JSON-RPC stream.
    """
    protocol_out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return protocol_out


def settings_from_args(args: argparse.Namespace) -> Any:
    from ..settings import parse_settings

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


def model_options(p: argparse.ArgumentParser) -> None:
    """The options that choose the model (``complete``, ``doctor``, ``explain``)."""
    p.add_argument("--model", help="known model name (see `slm-lsp model list`)")
    p.add_argument("--model-path", help="any GGUF file with FIM tokens")
    p.add_argument("--threads", type=int, help="CPU threads (default: all cores)")


def find_root(file: Path) -> Path:
    """The nearest folder above ``file`` holding `.git`, else the file's folder."""
    for folder in file.resolve().parents:
        if (folder / ".git").exists():
            return folder
    return file.resolve().parent
