"""Run `slm-lsp serve` under an audit hook that refuses and records any network access
that does not stay on this machine. Used by test_privacy.py; not part of the product."""

from __future__ import annotations

import ipaddress
import os
import sys

LOG = os.environ["SLM_AUDIT_LOG"]
WATCHED = {"socket.connect", "socket.getaddrinfo", "socket.gethostbyname", "socket.sendto",
           "socket.gethostbyname_ex", "socket.gethostbyaddr", "socket.bind"}


def _is_local(host: object) -> bool:
    if host in (None, "", "localhost"):
        return True
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    if not isinstance(host, str):
        return False
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _host_of(event: str, args: tuple[object, ...]) -> object:
    if event in ("socket.connect", "socket.sendto", "socket.bind"):
        address = args[1] if event != "socket.sendto" else args[-1]
        if isinstance(address, tuple) and address:
            return address[0]
        return None if isinstance(address, (str, bytes)) else address  # AF_UNIX paths are local
    return args[0] if args else None


def hook(event: str, args: tuple[object, ...]) -> None:
    if event not in WATCHED:
        return
    host = _host_of(event, args)
    if _is_local(host):
        return
    with open(LOG, "a", encoding="utf-8") as f:
        f.write(f"{event} {host!r}\n")
    raise PermissionError(f"slm-lsp privacy audit: {event} to {host!r} refused")


sys.addaudithook(hook)

if __name__ == "__main__":
    from slm_lsp.cli import main

    sys.exit(main(sys.argv[1:]))
