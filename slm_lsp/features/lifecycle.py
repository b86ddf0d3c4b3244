"""initialize / initialized / didChangeConfiguration: settings and model start-up."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsprotocol import types
from pygls.uris import to_fs_path

if TYPE_CHECKING:
    from ..server import SlmServer

log = logging.getLogger(__name__)


def _slm_section(options: Any) -> Any:
    """Accept both `{"slm": {...}}` and the bare section as initializationOptions."""
    if isinstance(options, dict) and "slm" in options:
        return options["slm"]
    return options


async def _pull_configuration(ls: SlmServer) -> Any | None:
    """The client's current `slm` section, if it supports workspace/configuration."""
    caps = ls.client_capabilities.workspace
    if caps is None or not caps.configuration:
        return None
    try:
        result = await ls.workspace_configuration_async(
            types.ConfigurationParams(items=[types.ConfigurationItem(section="slm")])
        )
    except Exception as exc:  # a client error must not take the server down
        log.warning("workspace/configuration failed: %s", exc)
        return None
    return result[0] if result else None


def _notify_extensions(ls: SlmServer, event: str) -> None:
    """Call ``event()`` on every extension in ``ls.extensions`` that has it (e.g. the index)."""
    for name, extension in list(ls.extensions.items()):
        hook = getattr(extension, event, None)
        if callable(hook):
            try:
                hook()
            except Exception:  # one feature's failure must not stop the others
                log.exception("%s.%s failed", name, event)


def register(server: SlmServer) -> None:
    """Lifecycle handlers."""

    @server.feature(types.INITIALIZE)
    def initialize(ls: SlmServer, params: types.InitializeParams) -> None:
        """Remember the workspace root and read initializationOptions (starts the model load)."""
        ls.loop = asyncio.get_event_loop()
        folders = params.workspace_folders or []
        uri = folders[0].uri if folders else params.root_uri
        ls.root = to_fs_path(uri) if uri else params.root_path
        ls.host.repo_name = Path(ls.root).name if ls.root else None
        ls.apply_settings(_slm_section(params.initialization_options), source="initializationOptions")

    @server.feature(types.INITIALIZED)
    async def initialized(ls: SlmServer, params: types.InitializedParams) -> None:
        """Pull settings from the client; the model is already loading."""
        ls.status(ls.host.state, ls.host.message)
        pulled = await _pull_configuration(ls)
        if pulled is not None:
            ls.apply_settings(pulled, source="workspace/configuration")
        _notify_extensions(ls, "on_initialized")

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    async def did_change_configuration(
        ls: SlmServer, params: types.DidChangeConfigurationParams
    ) -> None:
        """Re-pull the `slm` section (or take it from the notification) and apply it."""
        pulled = await _pull_configuration(ls)
        if pulled is None and isinstance(params.settings, dict):
            pulled = _slm_section(params.settings)
        if pulled is not None:
            ls.apply_settings(pulled, source="settings")

    @server.command("slm.memory")
    def memory(ls: SlmServer, *args: Any) -> dict[str, Any]:
        """Returns the server's memory in MiB: `{rss, anon, file, heap: {in_use, free,
        mapped}, python_blocks}` (`slm_lsp.memory.usage`; empty off Linux)."""
        from ..memory import usage

        return usage()

    @server.feature(types.SHUTDOWN)
    def shutdown(ls: SlmServer, params: None) -> None:
        """Stop background work (the index saves itself), then free the model."""
        _notify_extensions(ls, "on_shutdown")
        ls.host.close()
