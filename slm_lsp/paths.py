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


def private_tempdir() -> Path | None:
    """Point this process's temporary files (ours and its libraries') at `cache_root()/tmp`,
    a folder only the user can read, emptied first; None if it cannot be made (the system's
    stays in use)."""
    import shutil
    import tempfile

    parent = cache_root() / "tmp"
    folder = parent / str(os.getpid())
    try:
        for old in parent.iterdir() if parent.is_dir() else ():
            if old.name.isdigit() and not _alive(int(old.name)):  # left by a killed server
                shutil.rmtree(old, ignore_errors=True)
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True, mode=0o700)
    except OSError:
        return None
    tempfile.tempdir = str(folder)
    os.environ["TMPDIR"] = str(folder)
    return folder


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # someone else's process
    return True
