"""Which files the walker lets into the index: ignore files, secrets, binaries, size."""

from __future__ import annotations

from pathlib import Path

import pytest

from indexer.walker import Walker, is_noise_path, is_secret_path


def write(root: Path, rel: str, content: str | bytes = "x = 1\n") -> Path:
    """Create a file (and its folders) under root."""
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def walked(root: Path, max_file_kb: int = 512) -> list[str]:
    """Relative paths the walker yields."""
    return [f.rel for f in Walker(root, max_file_kb).walk()]


def test_root_and_nested_gitignore_and_slmignore(tmp_path: Path) -> None:
    write(tmp_path, ".gitignore", "*.log\nbuild/\n/generated.py\n")
    write(tmp_path, "app.py")
    write(tmp_path, "debug.log", "log line\n")
    write(tmp_path, "build/out.py")
    write(tmp_path, "generated.py")
    write(tmp_path, "pkg/generated.py")  # `/generated.py` is anchored to the root
    write(tmp_path, "pkg/.gitignore", "local_*.py\n!local_keep.py\n")
    write(tmp_path, "pkg/local_tmp.py")
    write(tmp_path, "pkg/local_keep.py")
    write(tmp_path, "pkg/sub/local_deep.py")  # nested rules apply below their folder
    write(tmp_path, "local_top.py")  # ... but not above it
    write(tmp_path, ".slmignore", "fixtures/\n")
    write(tmp_path, "tests/fixtures/big.py")
    write(tmp_path, "tests/test_app.py")
    assert walked(tmp_path) == [
        "app.py", "local_top.py", "pkg/generated.py", "pkg/local_keep.py", "tests/test_app.py",
    ]


def test_always_skipped_folders(tmp_path: Path) -> None:
    for rel in (".git/config.py", "node_modules/lib/index.js", ".venv/lib/x.py",
                "__pycache__/m.py", ".mypy_cache/x.py", "myenv/lib/site.py"):
        write(tmp_path, rel)
    write(tmp_path, "myenv/pyvenv.cfg", "home = /usr\n")  # any virtualenv, whatever its name
    write(tmp_path, "src/main.py")
    assert walked(tmp_path) == ["src/main.py"]


@pytest.mark.parametrize("rel", [
    ".env", ".env.local", "config/.env.production", "server.pem", "tls/private.key",
    "id_rsa", "id_rsa.pub", "home/.ssh/config", "id_ed25519", "cert.p12", "cert.pfx",
    "credentials.json", ".netrc", ".npmrc", ".pypirc", "app_secret.txt",
    "config/secrets.yaml", "secrets/db.py",
])
def test_secret_paths(rel: str) -> None:
    assert is_secret_path(rel)


@pytest.mark.parametrize("rel", ["src/main.py", "env.py", "README.md", "keyboard.py",
                                 "docs/environment.md"])
def test_ordinary_paths_are_not_secret(rel: str) -> None:
    assert not is_secret_path(rel)


def test_secrets_never_walked_or_accepted(tmp_path: Path) -> None:
    write(tmp_path, ".env", "TOKEN=abc\n")
    write(tmp_path, "deploy/server.pem", "-----BEGIN PRIVATE KEY-----\n")
    write(tmp_path, "secrets/db.py", "PASSWORD = 'x'\n")
    write(tmp_path, "main.py")
    walker = Walker(tmp_path)
    assert walked(tmp_path) == ["main.py"]
    assert not walker.accepts(".env")
    assert not walker.accepts(tmp_path / "secrets" / "db.py")
    assert walker.accepts(tmp_path / "main.py")


def test_binary_and_large_files_skipped(tmp_path: Path) -> None:
    write(tmp_path, "data.py", b"x = 1\x00\x01\x02\n")
    write(tmp_path, "latin1.txt", "caf\xe9\n".encode("latin-1"))
    write(tmp_path, "big.py", "x = 1\n" * 400)  # 2.4 KB
    write(tmp_path, "small.py")
    walker = Walker(tmp_path, max_file_kb=1)
    texts = {f.rel: walker.read(f.path) for f in walker.walk()}
    assert "big.py" not in texts
    assert texts["data.py"] is None and texts["latin1.txt"] is None
    assert texts["small.py"] == "x = 1\n"


@pytest.mark.parametrize("rel", [
    "package-lock.json", "static/app.min.js", "static/app.js.map", "uv.lock",
    "conf/locale/de/LC_MESSAGES/django.po", "locale/messages.pot", "locale/fr/django.mo",
])
def test_noise_paths(rel: str) -> None:
    assert is_noise_path(rel)


def test_noise_never_walked(tmp_path: Path) -> None:
    write(tmp_path, "app/views.py")
    write(tmp_path, "app/locale/de/LC_MESSAGES/django.po", 'msgid "Save"\nmsgstr "Sichern"\n')
    write(tmp_path, "app/static/app.min.js", "var a=1;")
    write(tmp_path, "docs/intro.txt", "Getting started\n")
    assert walked(tmp_path) == ["app/views.py", "docs/intro.txt"]


def test_paths_outside_root_refused(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    walker = Walker(root)
    assert walker.relative(tmp_path / "other.py") is None
    assert not walker.accepts(tmp_path / "other.py")
    assert walker.relative(root / "a" / "b.py") == "a/b.py"


def test_file_in_ignored_folder_is_refused(tmp_path: Path) -> None:
    write(tmp_path, ".gitignore", "vendor/\n")
    walker = Walker(tmp_path)
    assert not walker.accepts("vendor/lib/x.py")
    assert not walker.accepts("node_modules/a.js")
    assert walker.accepts("src/x.py")


def test_gitignore_changes_are_picked_up(tmp_path: Path) -> None:
    write(tmp_path, "a.py")
    walker = Walker(tmp_path)
    assert walker.accepts("a.py")
    write(tmp_path, ".gitignore", "a.py\n")
    assert not walker.accepts("a.py")
