"""The llama.cpp that `make install` built: CPU kernels chosen at load time, and the best ones.

The Makefile builds every x86-64 (or arm64) CPU variant of llama.cpp's kernels as modules
(GGML_BACKEND_DL with GGML_CPU_ALL_VARIANTS) and `init_llama` loads the best one the CPU
reports. If a wider instruction set is on this CPU, the loaded kernels must use it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

llama_cpp = pytest.importorskip("llama_cpp")

from slm_lsp.backends.native import (  # noqa: E402
    AVOIDED_VARIANTS,
    _variant_modules,
    cpu_variants,
    init_llama,
    system_info,
)

LIB = Path(llama_cpp.__file__).parent / "lib"
STAMP = Path(sys.prefix) / ".llama-cmake-args"
"""Written by the Makefile with the flags it built llama-cpp-python with."""


def test_the_makefile_build_has_its_variant_modules() -> None:
    if not STAMP.is_file():
        pytest.skip("llama-cpp-python was not built by the Makefile")
    if "GGML_CPU_ALL_VARIANTS=ON" in STAMP.read_text():
        assert _variant_modules(LIB), f"no CPU variant modules in {LIB}"


def _cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


@pytest.mark.skipif(not _variant_modules(LIB), reason="llama.cpp built without CPU variant modules")
def test_the_loaded_kernels_match_the_cpu() -> None:
    init_llama()
    loaded = cpu_variants()
    assert len(loaded) == 1, f"expected one CPU variant module loaded, got {loaded}"
    assert not set(loaded) & set(AVOIDED_VARIANTS), loaded  # AMX faults on some VMs
    assert "AMX" not in system_info()
    info = system_info()
    flags = _cpu_flags()
    if "avx2" in flags:
        assert "AVX2 = 1" in info, info
    if {"avx512f", "avx512bw", "avx512vl"} <= flags:
        assert "AVX512 = 1" in info, info
    if "avx512_vnni" in flags:
        assert "AVX512_VNNI = 1" in info, info
