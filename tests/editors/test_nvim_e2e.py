"""End to end: headless Neovim + this plugin + the real `slm-lsp serve` + the real model.

Opens a real Python file whose last statement is cut off, enters Insert mode there and waits
for the model's suggestion (native `vim.lsp.inline_completion` on Neovim 0.12, the plugin's
virtual-text renderer on 0.11 or when forced with `inline.mode = 'virtual_text'`), then
accepts it with <Tab>. Needs the default model in ~/.cache/slm-lsp/models
(`slm-lsp model install`).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.editors.nvimrun import Nvim, check, real_server_cmd

SOURCE = '''\
"""Small numeric helpers."""


def fibonacci(n: int) -> int:
    """Return the n-th Fibonacci number."""
    if n < 2:
        return n
    {masked}


def main() -> None:
    for i in range(10):
        print(fibonacci(i))


if __name__ == "__main__":
    main()
'''.format(masked="return ")  # the cut-off statement: the cursor goes after "return "
MASKED_LINE = 8  # "    return " (1-based)


def _model_installed() -> bool:
    try:
        from slm_lsp.models import DEFAULT_MODEL, verify_installed
    except ImportError:
        return False
    try:
        return bool(verify_installed(DEFAULT_MODEL).ok)
    except Exception:
        return False


needs_model = pytest.mark.skipif(not _model_installed(),
                                 reason="default model not installed (slm-lsp model install)")


def _project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    (root / ".git").mkdir(parents=True)
    path = root / "numeric.py"
    path.write_text(SOURCE, encoding="utf-8")
    assert path.read_text().splitlines()[MASKED_LINE - 1] == "    return "
    return path


def _run(nvim: Nvim, mode: str, tmp_path: Path) -> None:
    result = nvim.run_spec("real_spec.lua", tmp_path / "state", {
        "SLM_SERVER_CMD": json.dumps(real_server_cmd()),
        "SLM_INLINE_MODE": mode,
        "SLM_E2E_FILE": str(_project(tmp_path)),
        "SLM_E2E_LINE": str(MASKED_LINE),
    }, timeout=420)
    print(result.stdout)
    check(result)


@pytest.mark.model
@pytest.mark.slow
@needs_model
def test_native_inline_completion_012(nvim_012: Nvim, tmp_path: Path) -> None:
    _run(nvim_012, "auto", tmp_path)


@pytest.mark.model
@pytest.mark.slow
@needs_model
def test_forced_virtual_text_012(nvim_012: Nvim, tmp_path: Path) -> None:
    _run(nvim_012, "virtual_text", tmp_path)


@pytest.mark.model
@pytest.mark.slow
@needs_model
def test_virtual_text_on_011(nvim_011: Nvim, tmp_path: Path) -> None:
    _run(nvim_011, "auto", tmp_path)
