"""Repository copies for the retrieval arm: the repository without the target's file,
its index seeded from the full repository's (no leakage, PROTOCOL.md).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path


def slug(root: Path) -> str:
    resolved = str(root.resolve())
    return f"{root.name}-{hashlib.sha256(resolved.encode()).hexdigest()[:8]}"


def copy_without(root: Path, rel: str, copies: Path) -> Path:
    """A copy of ``root`` without the file ``rel``, kept under ``copies`` for re-runs.

    The copy's folder has the original's name, so whatever the server derives
    from the workspace name is the same as for the original.
    """
    key = rel.replace("/", "__")
    target = copies / slug(root) / key / root.name
    if target.is_dir():
        if (target / rel).exists():
            raise RuntimeError(f"{target} holds {rel}: remove {target.parent} and re-run")
        return target
    staging = target.parent / (root.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    skip = (root / rel).resolve()

    def ignore(folder: str, names: list[str]) -> list[str]:
        return [n for n in names if (Path(folder) / n).resolve() == skip or n == ".git"]

    shutil.copytree(root, staging, symlinks=True, ignore=ignore)
    staging.rename(target)
    return target


def index_folder(root: Path, env: dict[str, str]) -> Path:
    """Where the server running with ``env`` keeps the index of ``root``."""
    code = ("import sys; from pathlib import Path; from slm_lsp.paths import index_dir; "
            "print(index_dir(Path(sys.argv[1])))")
    out = subprocess.run([sys.executable, "-c", code, str(root)], env=env, check=True,
                         capture_output=True, text=True)
    return Path(out.stdout.strip())


def ensure_full_index(root: Path, env: dict[str, str], log: Callable[[str], None]) -> Path:
    """Build (or update) the index of the whole repository with `slm-lsp index`."""
    folder = index_folder(root, env)
    log(f"indexing {root} (slm-lsp index; reused if up to date)")
    subprocess.run([sys.executable, "-m", "slm_lsp", "index", str(root), "--json"], env=env,
                   check=True, stdout=subprocess.DEVNULL)
    return folder


def seed_index(full: Path, copy_root: Path, env: dict[str, str]) -> None:
    """Start the copy's index from the full one (the server's build drops the missing file)."""
    folder = index_folder(copy_root, env)
    if folder.exists() or not full.exists():
        return
    folder.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(full, folder)


def indexed_files(folder: Path) -> list[str] | None:
    """Root-relative files in a saved index, or None if it cannot be read."""
    from indexer import persist
    from indexer.store import META_FILE

    try:
        _info, files = persist.read_generation(folder)
        return sorted(json.loads(files[META_FILE])["files"])
    except Exception:  # noqa: BLE001 - reported as "unknown" by the caller
        return None
