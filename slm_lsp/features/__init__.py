"""LSP features, one module per feature; each has ``register(server)``."""

from __future__ import annotations

from ..runtime import BackendFactory, load_llama
from ..server import SlmServer
from . import (
    code_actions,
    completion,
    hover,
    index,
    inline_completion,
    lifecycle,
    prewarm,
    regions,
)

FEATURES = (lifecycle, inline_completion, completion, prewarm, regions, index, hover, code_actions)


def build_server(factory: BackendFactory = load_llama) -> SlmServer:
    """A server with every feature registered."""
    server = SlmServer(factory)
    for module in FEATURES:
        module.register(server)
    return server
