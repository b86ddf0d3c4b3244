"""LSP features, one module per feature; each has ``register(server)``."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..server import SlmServer


def register_all(server: SlmServer) -> None:
    """Register every feature's handlers on ``server``."""
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

    for module in (lifecycle, inline_completion, completion, prewarm, regions, index, hover,
                   code_actions):
        module.register(server)
