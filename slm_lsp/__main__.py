"""`python -m slm_lsp` is the `slm-lsp` command."""

import sys

from .cli import main

sys.exit(main())
