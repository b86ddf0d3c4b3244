"""`python -m slm_lsp.bench.convert TYPE OUT.gguf`: the default model re-quantized locally.

For the weight-layout question of issue 18 (see docs/latency.md): llama.cpp repacks some
formats (Q4_0, IQ4_NL, Q8_0) into interleaved layouts at load, which read prompts faster
on CPUs than the shipped Q4_K_M. This writes such a copy of the installed, verified
default model with llama.cpp's own quantizer (through llama-cpp-python) and prints its
size and sha256, so that `python -m slm_lsp.bench.throughput --model OUT.gguf` and
`slm-lsp bench --model-path OUT.gguf` can measure it. A benchmark tool, not a product
feature: the product ships no converted model (the runs named in docs/latency.md say why).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..models import DEFAULT_MODEL, verify, verify_installed

TYPES = ("Q4_0", "IQ4_NL", "Q8_0")


def convert(source: Path, out: Path, kind: str, threads: int = 1) -> str:
    """Write ``source`` re-quantized to ``kind`` at ``out``; returns the file's sha256."""
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{kind}")
    params.allow_requantize = True  # the source is already quantized (Q4_K_M)
    params.nthread = threads
    if llama_cpp.llama_model_quantize(str(source).encode(), str(out).encode(), params) != 0:
        raise RuntimeError(f"llama.cpp could not convert {source} to {kind}")
    return verify(out).sha256


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m slm_lsp.bench.convert",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("type", choices=TYPES)
    parser.add_argument("out", type=Path)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    checked = verify_installed(DEFAULT_MODEL)  # never convert a file that is not the model
    if not checked.ok:
        print(f"error: {checked.problem}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    sha = convert(checked.path, args.out, args.type, args.threads)
    print(f"{args.out}: {args.type}, {args.out.stat().st_size:,} bytes, sha256 {sha}, "
          f"{time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
