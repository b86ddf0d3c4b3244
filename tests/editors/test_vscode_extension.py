"""Runs the VS Code extension's unit tests (node's test runner) when its deps are installed.

`make -C editors test-vscode` is the main entry; this lets `pytest` cover them too.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

EXT = Path(__file__).resolve().parents[2] / "editors" / "vscode"


@pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not installed")
@pytest.mark.skipif(not (EXT / "node_modules").is_dir(),
                    reason="run `npm ci` in editors/vscode (make -C editors vscode-deps)")
def test_vscode_extension_unit_tests() -> None:
    result = subprocess.run(["npm", "test", "--silent"], cwd=EXT, capture_output=True,
                            text=True, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "# fail 0" in output, output
