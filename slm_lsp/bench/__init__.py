"""The completion benchmark (``slm-lsp bench``, ``python -m slm_lsp.bench``).

Not part of the product: no module outside this package imports it, except the
``bench`` sub-command, which hands its arguments to :func:`slm_lsp.bench.cli.main`.
Its results files live in the top-level ``bench/`` folder and BENCHMARKS.md.
"""
