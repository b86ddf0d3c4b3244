"""llama-cpp-python's OpenAI-compatible server, with this build's CPU kernels loaded first.

The Makefile builds llama.cpp's CPU kernels as loadable modules (one per CPU
generation); `slm_lsp.backends.native.init_llama` loads the best one, which the
stock `python -m llama_cpp.server` does not. Used by test_onprem_server.py as the
team's inference server; not part of the product.
"""

from __future__ import annotations

import sys

from slm_lsp.backends.native import init_llama

if __name__ == "__main__":
    init_llama()
    from llama_cpp.server.__main__ import main

    sys.argv[0] = "llama_cpp.server"
    main()
