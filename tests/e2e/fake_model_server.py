"""Run the `slm-lsp` command (``serve``, ``index``, ...) with test doubles instead of the
model and the embedding model, for tests that drive the real server process fast (the
fuzz and fault tests). Not part of the product.

The scripted backend answers every completion; with ``SLM_TEST_HASH_EMBEDDER=1`` the
repository index embeds with the hashing embedder (no model load, no torch)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import slm_lsp.cli.index as cli_index
import slm_lsp.features as features
import slm_lsp.workspace as workspace
from indexer.embedder import HashEmbedder
from indexer.index import RepoIndex
from slm_lsp.backends.fake import FakeBackend
from slm_lsp.cli import main
from slm_lsp.paths import index_dir
from slm_lsp.settings import ModelSettings

_build = features.build_server


def _fake(settings: ModelSettings) -> FakeBackend:
    return FakeBackend(lambda prompt: "value + 1\n" if len(prompt) % 2 else "", name="fake.gguf")


features.build_server = lambda factory=None: _build(_fake)  # type: ignore[assignment]

if os.environ.get("SLM_TEST_HASH_EMBEDDER") == "1":
    def _server_index(root: Path, cache_dir: Path, max_file_kb: int) -> RepoIndex:
        return RepoIndex(root, cache_dir, embedder=HashEmbedder(), max_file_kb=max_file_kb)

    def _cli_index(root: Path, max_file_kb: int = 512) -> RepoIndex:
        return RepoIndex(root, index_dir(root), embedder=HashEmbedder(), max_file_kb=max_file_kb)

    workspace._open_index = _server_index
    cli_index._open_index = _cli_index

if __name__ == "__main__":
    sys.exit(main())
