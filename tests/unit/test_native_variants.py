"""Loading llama.cpp's CPU kernel modules (GGML_BACKEND_DL builds), without the real library."""

from __future__ import annotations

from pathlib import Path

import pytest

from slm_lsp.backends import native
from slm_lsp.backends.base import BackendError


def test_a_build_without_variant_modules_is_left_alone(tmp_path: Path) -> None:
    (tmp_path / "libggml-cpu.so").write_bytes(b"")  # one built-in CPU backend: nothing to load
    (tmp_path / "libggml.so.0").write_bytes(b"")
    assert native._variant_modules(tmp_path) == []
    native._load_cpu_variants(tmp_path)  # no CDLL of the empty files: that would raise


def test_variant_modules_are_found_by_their_names(tmp_path: Path) -> None:
    for name in ("libggml-cpu-haswell.so", "libggml-cpu-icelake.so", "libggml-cpu-x64.so.txt"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in native._variant_modules(tmp_path)] == [
        "libggml-cpu-haswell.so", "libggml-cpu-icelake.so"]


def test_variant_modules_without_ggml_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "libggml-cpu-haswell.so").write_bytes(b"")
    (tmp_path / "libggml.so").write_bytes(b"")  # not the name libllama links
    with pytest.raises(BackendError, match="no ggml library"):
        native._load_cpu_variants(tmp_path)
