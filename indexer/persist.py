"""Crash-safe generations of files in a cache folder.

Layout of a folder managed here::

    manifest.json          {"format": 1, "generation": "gen-...", "files": {name: {sha256, size}},
                            "info": {...}}
    gen-<time>-<random>/   the files of the current generation
    .lock                  advisory lock serializing writers (and readers against cleanup)

`write_generation` writes every file into a fresh temporary folder, fsyncs them,
renames the folder into place, and only then switches `manifest.json` with
`os.replace`. A process killed at any point leaves the previous manifest, and so
the previous generation, intact. `read_generation` checks the format and each
file's size and SHA-256 and raises `CorruptIndex` on any mismatch.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

FORMAT = 1
MANIFEST = "manifest.json"
_PREFIX = "gen-"
_TMP_PREFIX = ".tmp-"

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


class CorruptIndex(Exception):
    """A stored generation is missing, truncated, of another format or fails its checksum."""


@contextlib.contextmanager
def locked(folder: Path, exclusive: bool) -> Iterator[None]:
    """Hold the folder's advisory lock (shared for readers, exclusive for writers)."""
    folder.mkdir(parents=True, exist_ok=True)
    if fcntl is None:  # pragma: no cover - Windows
        yield
        return
    with open(folder / ".lock", "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entries (renames) to disk where the platform allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_file(path: Path, data: bytes) -> None:
    """Write bytes and fsync them."""
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _digest(data: bytes) -> str:
    """Hex SHA-256 of bytes."""
    return hashlib.sha256(data).hexdigest()


Writer = Callable[[Path], None]
"""Writes one file of a generation itself, to the path it is given (e.g. FAISS's
`write_index`, which streams: its `serialize_index` would hold the whole file in memory
twice over)."""


def json_writer(data: Mapping[str, Any]) -> Writer:
    """A `Writer` of ``data`` as compact JSON (the bytes of ``json.dumps(data,
    separators=(",", ":")).encode()``), ``data`` and its lists and mappings written an item
    at a time: a large index's metadata (chunk texts included) is never one string in
    memory, nor its bytes a second copy."""

    def write(path: Path) -> None:
        with open(path, "w", encoding="ascii", newline="") as out:
            for piece in _json_pieces(data, levels=2):
                out.write(piece)

    return write


def _json_pieces(value: Any, levels: int) -> Iterator[str]:
    """Compact JSON of ``value``; lists and mappings in the top ``levels`` item by item."""
    if levels == 0 or not isinstance(value, (list, dict)):
        yield json.dumps(value, separators=(",", ":"))
        return
    if isinstance(value, dict):
        ends, entries = "{}", ((json.dumps(str(k)) + ":", v) for k, v in value.items())
    else:
        ends, entries = "[]", (("", v) for v in value)
    yield ends[0]
    for i, (label, item) in enumerate(entries):
        yield ("," if i else "") + label
        yield from _json_pieces(item, levels - 1)
    yield ends[1]


def _written(path: Path, write: Writer) -> dict[str, Any]:
    """Let ``write`` make the file at ``path``, fsync it; its SHA-256 and size."""
    write(path)
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
            size += len(block)
        os.fsync(handle.fileno())
    return {"sha256": digest.hexdigest(), "size": size}


def write_generation(folder: Path, files: Mapping[str, bytes | Writer],
                     info: Mapping[str, Any]) -> str:
    """Atomically make `files` (name -> its bytes, or a `Writer` that makes it) the current
    generation; returns its name."""
    with locked(folder, exclusive=True):
        name = f"{_PREFIX}{time.time_ns():020d}-{secrets.token_hex(4)}"
        tmp = folder / f"{_TMP_PREFIX}{name}"
        tmp.mkdir()
        entries: dict[str, dict[str, Any]] = {}
        for file_name, data in files.items():
            if callable(data):
                entries[file_name] = _written(tmp / file_name, data)
                continue
            _write_file(tmp / file_name, data)
            entries[file_name] = {"sha256": _digest(data), "size": len(data)}
        fsync_dir(tmp)
        os.rename(tmp, folder / name)
        fsync_dir(folder)
        manifest = {"format": FORMAT, "generation": name, "files": entries, "info": dict(info)}
        staged = folder / f"{_TMP_PREFIX}{MANIFEST}"
        _write_file(staged, json.dumps(manifest, indent=1).encode())
        os.replace(staged, folder / MANIFEST)
        fsync_dir(folder)
        _cleanup(folder, keep=name)
        return name


def _cleanup(folder: Path, keep: str) -> None:
    """Remove generations and temporary files other than `keep` (called under the lock)."""
    for entry in folder.iterdir():
        if entry.name == keep or not entry.name.startswith((_PREFIX, _TMP_PREFIX)):
            continue
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                entry.unlink()


def exists(folder: Path) -> bool:
    """True if the folder has a manifest (valid or not)."""
    return (folder / MANIFEST).is_file()


def read_generation(folder: Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The current generation's info and files; raises `CorruptIndex` if anything is off."""
    with locked(folder, exclusive=False):
        manifest = _read_manifest(folder)
        generation = folder / str(manifest["generation"])
        files: dict[str, bytes] = {}
        for file_name, entry in manifest["files"].items():
            files[file_name] = _read_checked(generation / file_name, entry)
    return dict(manifest.get("info", {})), files


def _read_manifest(folder: Path) -> dict[str, Any]:
    """Parse and sanity-check `manifest.json`."""
    try:
        manifest = json.loads((folder / MANIFEST).read_bytes())
    except FileNotFoundError as exc:
        raise CorruptIndex(f"no manifest in {folder}") from exc
    except (OSError, ValueError) as exc:
        raise CorruptIndex(f"unreadable manifest in {folder}: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CorruptIndex(f"manifest in {folder} has an unknown format")
    name = manifest.get("generation")
    if not isinstance(name, str) or not name.startswith(_PREFIX) or "/" in name:
        raise CorruptIndex(f"manifest in {folder} names no valid generation")
    if not isinstance(manifest.get("files"), dict):
        raise CorruptIndex(f"manifest in {folder} lists no files")
    return manifest


def _read_checked(path: Path, entry: Mapping[str, Any]) -> bytes:
    """A file's bytes, after checking its size and SHA-256 against the manifest."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CorruptIndex(f"missing {path.name}: {exc}") from exc
    if len(data) != entry.get("size") or _digest(data) != entry.get("sha256"):
        raise CorruptIndex(f"{path} is truncated or corrupt (checksum mismatch)")
    return data


def disk_size(folder: Path) -> int:
    """Bytes used by the current generation and manifest (0 if there is none)."""
    try:
        manifest = _read_manifest(folder)
    except CorruptIndex:
        return 0
    total = (folder / MANIFEST).stat().st_size
    generation = folder / str(manifest["generation"])
    for file_name in manifest["files"]:
        with contextlib.suppress(OSError):
            total += (generation / file_name).stat().st_size
    return total
