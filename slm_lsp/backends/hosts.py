"""Which inference servers code may be sent to.

A repository's own editor settings (a cloned project's `.vscode/settings.json`)
can set `slm.backend.url`, so a URL alone never decides where code goes.
Loopback is always allowed; any other host must also be named by the user, in a
place no workspace can write: the environment variable `SLM_LSP_ALLOWED_HOSTS`
or `allowed_hosts` in the user's config file (``user_config_file()``). The check
reads the URL's text only: no name lookup, no connection happens before it passes.
"""

from __future__ import annotations

import ipaddress
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import tomllib

from .base import BackendError

ENV_ALLOWED = "SLM_LSP_ALLOWED_HOSTS"
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})


class HostNotAllowed(BackendError):
    """The URL's host is neither loopback nor allowed by the user."""


@dataclass(frozen=True)
class Endpoint:
    """A checked server address."""

    scheme: str
    host: str
    port: int
    base_path: str
    """The URL's path without a trailing slash, e.g. ``/v1``."""

    @property
    def label(self) -> str:
        return f"{self.host}:{self.port}"


def user_config_dir() -> Path:
    """`$SLM_LSP_CONFIG_HOME`, else the platform's per-user config folder + `slm-lsp`."""
    explicit = os.environ.get("SLM_LSP_CONFIG_HOME")
    if explicit:
        return Path(explicit).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        xdg = os.environ.get("XDG_CONFIG_HOME")
        base = Path(xdg).expanduser() if xdg else Path.home() / ".config"
    return base / "slm-lsp"


def user_config_file() -> Path:
    return user_config_dir() / "config.toml"


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and the loopback names, judged from the text alone."""
    name = host.strip("[]").lower().rstrip(".")
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return name in LOOPBACK_NAMES or name.endswith(".localhost")


def allowed_hosts() -> tuple[frozenset[str], str | None]:
    """Hosts the user allows, and a problem reading the config file (if any)."""
    hosts = {h.strip().lower() for h in os.environ.get(ENV_ALLOWED, "").replace(",", " ").split()}
    problem = None
    path = user_config_file()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        data = {}
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        data, problem = {}, f"{path} could not be read ({exc}); its allowed_hosts are ignored"
    listed = data.get("allowed_hosts", [])
    if isinstance(listed, list) and all(isinstance(h, str) for h in listed):
        hosts |= {h.strip().lower() for h in listed}
    elif listed:
        problem = f"{path}: allowed_hosts must be a list of host names"
    return frozenset(h.rstrip(".") for h in hosts if h), problem


def check_url(url: str) -> Endpoint:
    """The endpoint of ``url`` if code may be sent there, else ``HostNotAllowed``/``BackendError``."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise BackendError(f"slm.backend.url {url!r} is not a valid URL ({exc})") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BackendError(f"slm.backend.url {url!r} must be an http:// or https:// URL with a host")
    if parts.username or parts.password:
        raise BackendError("slm.backend.url must not hold a user name or password; "
                           "put an API key in the SLM_LSP_API_KEY environment variable")
    host = parts.hostname.lower().rstrip(".")
    if not is_loopback(host):
        allowed, problem = allowed_hosts()
        if host not in allowed:
            raise HostNotAllowed(
                f"slm.backend.url points at {host}, which is not an allowed host, so no code "
                f"was sent there. Only loopback and the hosts you list yourself are used: add "
                f'allowed_hosts = ["{host}"] to {user_config_file()} or set '
                f"{ENV_ALLOWED}={host}. Completions use the local model meanwhile."
                + (f" ({problem})" if problem else ""))
    default_port = 443 if parts.scheme == "https" else 80
    return Endpoint(parts.scheme, host, port or default_port, parts.path.rstrip("/"))
