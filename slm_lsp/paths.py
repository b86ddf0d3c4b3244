"""Where slm-lsp keeps its per-user files (models, indexes, explanation caches)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def cache_root() -> Path:
    """`$SLM_LSP_HOME`, else `$XDG_CACHE_HOME/slm-lsp`, else `~/.cache/slm-lsp`."""
    explicit = os.environ.get("SLM_LSP_HOME")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "slm-lsp"


def models_dir() -> Path:
    """Folder holding installed GGUF models."""
    return cache_root() / "models"


def workspace_dir(root: str | os.PathLike[str]) -> Path:
    """Per-workspace folder (index, explanation cache), keyed by the absolute root path."""
    resolved = str(Path(root).expanduser().resolve())
    digest = hashlib.sha256(resolved.encode()).hexdigest()[:16]
    return cache_root() / "workspaces" / f"{Path(resolved).name or 'root'}-{digest}"


def index_dir(root: str | os.PathLike[str]) -> Path:
    """Where the index of `root` is kept: `workspace_dir(root) / "index"`."""
    return workspace_dir(root) / "index"
