"""`python -m slm_lsp.bench [devset] ...`."""

import sys

from .cli import main

sys.exit(main())
