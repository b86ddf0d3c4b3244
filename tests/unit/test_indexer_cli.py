"""`slm-lsp index` and `slm-lsp search` (with the hashing embedder in place of the model)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from indexer.embedder import HashEmbedder
from indexer.index import RepoIndex
from slm_lsp.cli import index as cli_index
from slm_lsp.cli import main
from slm_lsp.paths import index_dir


@pytest.fixture(autouse=True)
def hashing_index(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep caches in tmp_path and swap the real model for the hashing embedder."""
    monkeypatch.setenv("SLM_LSP_HOME", str(tmp_path / "home"))

    def open_index(root: Path, max_file_kb: int = 512) -> RepoIndex:
        return RepoIndex(root, index_dir(root), embedder=HashEmbedder(),
                         max_file_kb=max_file_kb)

    monkeypatch.setattr(cli_index, "_open_index", open_index)


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "mathutil.py").write_text(
        "def greatest_common_divisor(a, b):\n    while b:\n        a, b = b, a % b\n    return a\n")
    (root / "pkg" / "text.py").write_text(
        "def reverse_words(sentence):\n    return ' '.join(reversed(sentence.split()))\n")
    (root / ".env").write_text("TOKEN=secret\n")
    return root


def test_index_json_then_reindex_reuses(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["index", str(repo), "--json"]) == 0
    out, err = capsys.readouterr()
    stats = json.loads(out.strip().splitlines()[-1])
    assert stats["files"] == 2 and stats["languages"] == {"python": 2}
    assert stats["chunks"] == 2 and stats["reused"] == 0 and stats["seconds"] >= 0
    assert "2/2 files" in err
    assert main(["index", str(repo), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["reused"] == 2


def test_search_json(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["index", str(repo)])
    capsys.readouterr()
    assert main(["search", "greatest common divisor", "--root", str(repo), "-k", "1",
                 "--json"]) == 0
    results = json.loads(capsys.readouterr().out)["results"]
    assert results == [{"path": "pkg/mathutil.py", "start_line": 1, "end_line": 4,
                        "score": results[0]["score"], "symbol": "greatest_common_divisor"}]


def test_search_text_output(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["index", str(repo)])
    capsys.readouterr()
    assert main(["search", "reverse words", "--root", str(repo)]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("pkg/text.py:1-2  ") and first.endswith("reverse_words")


def test_search_without_index_fails_clearly(repo: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["search", "anything", "--root", str(repo)]) == 1
    assert "slm-lsp index" in capsys.readouterr().err


def test_index_missing_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["index", str(tmp_path / "nope")]) == 1
    assert "not a folder" in capsys.readouterr().err
