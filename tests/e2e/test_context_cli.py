"""`slm-lsp context`: the repository context a completion would get, from the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT, server_env

SAMPLE = ROOT / "examples" / "sample"


@pytest.mark.model
def test_context_prints_the_definitions_and_their_tokens(model_installed: Path, tmp_path: Path) -> None:
    lines = (SAMPLE / "inventory.py").read_text().split("\n")
    row = next(i for i, t in enumerate(lines) if "total += unit_price" in t)
    result = subprocess.run(
        [sys.executable, "-m", "slm_lsp", "context", str(SAMPLE / "inventory.py"), str(row + 1),
         "13", "--root", str(SAMPLE), "--mode", "definitions", "--json",
         "--model-path", str(model_installed)],
        capture_output=True, text=True, timeout=120, env=server_env(SLM_LSP_HOME=str(tmp_path)))
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["mode"] == "definitions" and 0 < answer["tokens"] <= answer["budget"]
    assert [f["path"] for f in answer["files"]] == ["pricing.py"]
    text = answer["files"][0]["text"]
    assert "def unit_price(sku: str) -> float:" in text and "def apply_discount(" in text
    assert "return" not in text  # stubs, not bodies


def test_context_on_a_missing_file_says_so(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "slm_lsp", "context", str(tmp_path / "nope.py"),
                             "1", "1"], capture_output=True, text=True, timeout=60,
                            env=server_env(SLM_LSP_HOME=str(tmp_path)))
    assert result.returncode == 2 and "cannot use" in result.stderr and not result.stdout
