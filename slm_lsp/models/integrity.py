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
