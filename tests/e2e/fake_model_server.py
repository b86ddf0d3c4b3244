"""Run `slm-lsp serve` with the scripted test backend instead of the model, for tests that
drive the real server fast (the fuzz test). Not part of the product."""

from __future__ import annotations

import sys

import slm_lsp.features as features
from slm_lsp.backends.fake import FakeBackend
from slm_lsp.cli import main
from slm_lsp.settings import ModelSettings

_build = features.build_server


def _fake(settings: ModelSettings) -> FakeBackend:
    return FakeBackend(lambda prompt: "value + 1\n" if len(prompt) % 2 else "", name="fake.gguf")


features.build_server = lambda factory=None: _build(_fake)  # type: ignore[assignment]

if __name__ == "__main__":
    sys.exit(main())
