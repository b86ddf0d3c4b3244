"""The indexing benchmark's offline parts: dev-set parsing, unpacking, report rendering."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from indexer.index import IndexStats
from slm_lsp.bench import index as bench_index
from slm_lsp.bench.index import Package, Result


def test_read_devset(tmp_path: Path) -> None:
    devset = tmp_path / "devset.toml"
    devset.write_text('[[repo]]\nname = "click"\npypi = "click==8.5.1"\nlanguage = "python"\n'
                      '[[repo]]\nname = "jinja"\npypi = "Jinja2==3.1.6"\n')
    packages = bench_index.read_devset(devset)
    assert packages == [Package("click", "click==8.5.1"), Package("jinja", "Jinja2==3.1.6")]
    assert packages[1].slug == "jinja2-3.1.6"


def test_unpack_keeps_package_folders_only(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench_index, "BENCH_DIR", tmp_path / ".bench")
    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("demo/__init__.py", "def hello():\n    return 1\n")
        archive.writestr("demo_extra/util.py", "X = 1\n")
        archive.writestr("demo-1.0.dist-info/METADATA", "Name: demo\n")
    root = bench_index.unpack(Package("demo", "demo==1.0"), wheel)
    assert sorted(p.name for p in root.iterdir()) == ["demo", "demo_extra"]


def test_render_report() -> None:
    cold = IndexStats(10, 200, {"python": 10}, seconds=20.0, embedded=200)
    warm = IndexStats(10, 200, {"python": 10}, seconds=0.1, reused=10)
    result = Result(Package("demo", "demo==1.0"), cold, warm, 3 * 2**20, 12.0, 30.0)
    text = bench_index.render([result, result], "python -m slm_lsp.bench.index", 4.5, 2,
                              "0.10 0.20 0.30")
    assert "| demo==1.0 | 10 | 200 | 20.0 | 10.0 | 0.10 | 200x | 3.00 MiB |" in text
    assert "| **total** | 20 | 400 | 40.0 | 10.0 | 0.20 | 200x | 6.00 MiB |" in text
    assert "python -m slm_lsp.bench.index" in text and "cores" in text
