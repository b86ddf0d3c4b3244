"""Is a model there and intact: size and sha256 checks, the sidecar that remembers a
good check, and finding the installed file of a known model.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .catalog import DEFAULT_MODEL, KNOWN_MODELS, KnownModel, ModelError, known, model_file

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of re-hashing a file."""

    path: Path
    sha256: str
    """Hex sha256 of the file; empty when it could not be read."""
    size: int
    """Size in bytes; -1 when the file could not be read."""
    ok: bool
    problem: str | None = None
    """Why ``ok`` is false, for people."""


CHUNK = 1024 * 1024
"""Bytes read and written per step while assembling or hashing."""


def _hash_file(path: Path) -> tuple[str, int]:
    """Hex sha256 and size of ``path``, read in chunks."""
    hasher = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            hasher.update(chunk)
            size += len(chunk)
    return hasher.hexdigest(), size


def verify(
    path: str | os.PathLike[str],
    expected_sha: str | None = None,
    expected_size: int | None = None,
) -> VerifyResult:
    """Re-hash ``path`` (always) and compare with the expected sha256 and size, if given."""
    target = Path(path)
    if not target.exists():
        return VerifyResult(target, "", -1, False, f"file not found: {target}")
    if not target.is_file():
        return VerifyResult(target, "", -1, False, f"not a regular file: {target}")
    try:
        sha, size = _hash_file(target)
    except OSError as exc:
        return VerifyResult(target, "", -1, False, f"cannot read {target}: {exc}")
    problem = mismatch(sha, size, expected_sha, expected_size)
    return VerifyResult(target, sha, size, problem is None, problem)


def mismatch(
    sha: str, size: int, expected_sha: str | None, expected_size: int | None
) -> str | None:
    """Human-readable difference from the expected values, or None if they match."""
    if expected_size is not None and size != expected_size:
        return f"size mismatch: expected {expected_size} bytes, got {size}"
    if expected_sha is not None and sha.lower() != expected_sha.lower():
        return f"sha256 mismatch: expected {expected_sha.lower()}, got {sha}"
    return None


def verify_known(model: KnownModel, path: Path) -> VerifyResult:
    """Full verification of an installed known model; refreshes the sidecar when it passes."""
    result = verify(path, model.sha256, model.size)
    if result.ok:
        write_sidecar(path, result.sha256)
    else:
        unlink_quiet(sidecar_path(path))
    return result


# --------------------------------------------------------------------------- sidecar


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + ".verified.json")


def write_sidecar(path: Path, sha: str) -> None:
    """Record that ``path``, as it is now (size, mtime), hashes to ``sha``."""
    st = path.stat()
    data = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha}
    side = sidecar_path(path)
    tmp = side.with_name(f"{side.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(json.dumps(data) + "\n", encoding="utf-8")
        os.replace(tmp, side)
    except OSError as exc:  # the sidecar is only a cache: never fail because of it
        log.warning("could not write %s: %s", side, exc)
        unlink_quiet(tmp)


def sidecar_ok(model: KnownModel, path: Path) -> bool:
    """True when the sidecar says ``path`` was verified and it has not changed since."""
    try:
        st = path.stat()
        data = json.loads(sidecar_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(
        isinstance(data, dict)
        and data.get("size") == st.st_size == model.size
        and data.get("mtime_ns") == st.st_mtime_ns
        and str(data.get("sha256", "")).lower() == model.sha256.lower()
    )


def unlink_quiet(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


GGUF_MAGIC = b"GGUF"
"""First four bytes of every GGUF file."""


def installed_path(model: KnownModel) -> Path | None:
    """Path of ``model`` if installed and verified, else None.

    Cheap when the sidecar is current; a file without a current sidecar (copied
    in by hand, touched) is re-hashed once and the sidecar rewritten.
    """
    path = model_file(model)
    if sidecar_ok(model, path):
        return path
    if path.is_file() and verify_known(model, path).ok:
        return path
    return None


def installed_models() -> list[tuple[KnownModel, Path | None]]:
    """Every known model with its installed path, or None if it is not installed."""
    return [(m, installed_path(m)) for m in KNOWN_MODELS.values()]


def resolve_model_path(name: str, path: str) -> Path:
    """The GGUF file to load: ``path`` if set, else the installed known model ``name``."""
    if path:
        return _check_gguf(Path(path).expanduser())
    model = known(name or DEFAULT_MODEL)
    found = installed_path(model)
    if found is None:
        where = model_file(model)
        state = "failed verification" if where.exists() else "is not installed"
        raise ModelError(
            f"model {model.name} {state} ({where}); run `slm-lsp model install {model.name}`"
        )
    return found


def verify_installed(name: str) -> VerifyResult:
    """Re-hash the installed file of known model ``name``; refreshes its sidecar if good."""
    model = known(name)
    path = model_file(model)
    if not path.exists():
        return VerifyResult(
            path, "", -1, False,
            f"model {model.name} is not installed ({path}); "
            f"run `slm-lsp model install {model.name}`",
        )
    return verify_known(model, path)


def check_gguf(path: str | os.PathLike[str]) -> Path:
    """``path`` as a Path if it is a readable file starting with the GGUF magic.

    Raises ModelError saying what is wrong otherwise.
    """
    return _check_gguf(Path(path).expanduser())


def _check_gguf(path: Path) -> Path:
    """``path`` if it is a readable file starting with the GGUF magic; ModelError otherwise."""
    if not path.exists():
        raise ModelError(f"model file {path} does not exist; check the `slm.model.path` setting")
    if not path.is_file():
        raise ModelError(f"model path {path} is not a file; point `slm.model.path` at a .gguf file")
    try:
        with open(path, "rb") as fh:
            head = fh.read(len(GGUF_MAGIC))
    except OSError as exc:
        raise ModelError(f"cannot read model file {path}: {exc}") from exc
    if head != GGUF_MAGIC:
        raise ModelError(
            f"{path} is not a GGUF model (it does not start with {GGUF_MAGIC!r}); "
            "llama.cpp needs a .gguf file"
        )
    return path


# ggml tensor types: (elements per block, bytes per block), for the formats GGUF models use.
_GGML_BLOCKS: dict[int, tuple[int, int]] = {
    0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34),
    9: (32, 36), 10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210),
    15: (256, 292), 20: (32, 18), 24: (1, 1), 25: (1, 2), 26: (1, 4), 27: (1, 8), 28: (1, 8),
    30: (1, 2),
}
_GGUF_SCALARS = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
"""GGUF metadata value types of fixed size (8: string and 9: array are read apart)."""


def gguf_extent(path: str | os.PathLike[str]) -> int:
    """How many bytes a GGUF file needs: the end of its last tensor's data, from its header
    and tensor table. ModelError when the header itself is cut short or malformed."""
    import struct

    def read(fh: Any, n: int) -> bytes:
        data = fh.read(n)
        if len(data) != n:
            raise ModelError(f"{path}: the GGUF header ends early (the file is cut short)")
        return bytes(data)

    def u32(fh: Any) -> int:
        return int(struct.unpack("<I", read(fh, 4))[0])

    def u64(fh: Any) -> int:
        return int(struct.unpack("<Q", read(fh, 8))[0])

    def string(fh: Any) -> bytes:
        return read(fh, u64(fh))

    def skip_value(fh: Any, kind: int) -> Any:
        if kind == 8:
            return string(fh)
        if kind == 9:
            inner, count = u32(fh), u64(fh)
            if inner in _GGUF_SCALARS:
                read(fh, _GGUF_SCALARS[inner] * count)
            else:
                for _ in range(count):
                    skip_value(fh, inner)
            return None
        if kind not in _GGUF_SCALARS:
            raise ModelError(f"{path}: unknown GGUF metadata type {kind}")
        return read(fh, _GGUF_SCALARS[kind])

    with open(path, "rb") as fh:
        if read(fh, 4) != GGUF_MAGIC:
            raise ModelError(f"{path} is not a GGUF model")
        version = u32(fh)
        if version < 2:
            raise ModelError(f"{path}: GGUF version {version} is not supported")
        n_tensors, n_kv = u64(fh), u64(fh)
        alignment = 32
        for _ in range(n_kv):
            key = string(fh)
            kind = u32(fh)
            value = skip_value(fh, kind)
            if key == b"general.alignment" and kind == 4 and value is not None:
                alignment = int(struct.unpack("<I", value)[0])
        end = 0
        for _ in range(n_tensors):
            string(fh)
            dims = [u64(fh) for _ in range(u32(fh))]
            kind, offset = u32(fh), u64(fh)
            elements = 1
            for d in dims:
                elements *= d
            block, size = _GGML_BLOCKS.get(kind, (1, 0))  # unknown type: its start at least
            end = max(end, offset + elements // block * size)
        start = fh.tell()
    start += (-start) % alignment
    return start + end


def check_complete(path: str | os.PathLike[str]) -> None:
    """ModelError when the file is shorter than its own tensor table says (cut short)."""
    needed = gguf_extent(path)
    size = Path(path).stat().st_size
    if size < needed:
        raise ModelError(f"{path} is cut short: its tensors need {needed} bytes, the file has "
                         f"{size} (an interrupted copy or download); install or copy it again")
