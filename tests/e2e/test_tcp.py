"""`slm-lsp serve --tcp`: the same protocol over a local socket (no model needed)."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from argparse import ArgumentTypeError
from typing import Any

import pytest

from slm_lsp.cli.serve import _loopback, tcp_address

from .conftest import SERVER, server_env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def send(sock: socket.socket, message: dict[str, Any]) -> None:
    body = json.dumps({"jsonrpc": "2.0", **message}).encode()
    sock.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body)


def receive(stream: Any, want_id: int) -> dict[str, Any]:
    """Messages from the server until the response to ``want_id``."""
    while True:
        length = 0
        while (line := stream.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        assert length, "the server closed the connection"
        message = json.loads(stream.read(length))
        if message.get("id") == want_id and "method" not in message:
            return message


def connect(port: int, server: subprocess.Popen[bytes]) -> socket.socket:
    deadline = time.monotonic() + 30
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=30)
        except OSError:
            assert server.poll() is None, server.stderr.read().decode() if server.stderr else ""
            assert time.monotonic() < deadline, "the server never listened"
            time.sleep(0.1)


def test_a_client_talks_to_the_server_over_tcp(tmp_path) -> None:
    port = free_port()
    missing = tmp_path / "none.gguf"
    server = subprocess.Popen([*SERVER, "--tcp", f"127.0.0.1:{port}"], env=server_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        with connect(port, server) as sock, sock.makefile("rb") as stream:
            send(sock, {"id": 1, "method": "initialize", "params": {
                "processId": None, "rootUri": tmp_path.as_uri(), "capabilities": {},
                "initializationOptions": {"slm": {"model": {"path": str(missing)},
                                                  "index": {"enabled": False}}}}})
            reply = receive(stream, 1)
            assert "inlineCompletionProvider" in reply["result"]["capabilities"]
            assert "hoverProvider" in reply["result"]["capabilities"]
            send(sock, {"method": "initialized", "params": {}})
            send(sock, {"id": 2, "method": "shutdown"})
            assert receive(stream, 2)["result"] is None
            send(sock, {"method": "exit"})
        server.wait(timeout=30)
        assert server.stdout is not None and server.stdout.read() == b""  # nothing on stdout
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def test_a_bad_address_or_a_taken_port_is_a_clear_error() -> None:
    bad = subprocess.run([*SERVER, "--tcp", "localhost:http"], env=server_env(),
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2
    assert "expected [HOST:]PORT" in bad.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = subprocess.run([*SERVER, "--tcp", str(port)], env=server_env(),
                              capture_output=True, text=True, timeout=60)
    assert busy.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in busy.stderr
    assert "Traceback" not in busy.stderr


def test_tcp_addresses_parse_with_a_local_default_host() -> None:
    assert tcp_address("2087") == ("127.0.0.1", 2087)
    assert tcp_address("0.0.0.0:2087") == ("0.0.0.0", 2087)
    assert tcp_address("[::1]:2087") == ("::1", 2087)
    for bad in ("", "host:", "2087:", "0", "70000", "-1"):
        with pytest.raises(ArgumentTypeError):
            tcp_address(bad)
    assert _loopback("127.0.0.1") and _loopback("::1") and _loopback("localhost")
    assert not _loopback("0.0.0.0") and not _loopback("192.168.1.4")
