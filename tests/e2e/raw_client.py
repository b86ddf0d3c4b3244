"""A raw JSON-RPC client for the server process: bytes in, framed messages out, the server's
requests answered. For tests that must send what no LSP library would (fuzz, faults)."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from .conftest import server_env

ANSWER_S = 30.0
"""How long a well-formed request may take to be answered (generous: a loaded CI machine)."""


class RawServer:
    """The server as a subprocess, spoken to in raw bytes; answers its requests to the client."""

    def __init__(self, command: list[str], home: Path, log_name: str = "server.log",
                 **env: str) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.log = home / log_name
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log.open("ab"),
                                     env=server_env(SLM_LSP_HOME=str(home), **env))
        self.responses: dict[Any, dict[str, Any]] = {}
        self.notifications: list[dict[str, Any]] = []
        self.arrived = threading.Condition()
        self.sent = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        out = self.proc.stdout
        assert out is not None
        while True:
            length = None
            while True:
                line = out.readline()
                if not line:
                    return
                if line in (b"\r\n", b"\n"):
                    break
                name, _, value = line.decode("ascii", "replace").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            assert length is not None, "the server sent a frame without Content-Length"
            message = json.loads(out.read(length))
            if "method" in message and "id" in message:  # a request to the client
                self.send({"jsonrpc": "2.0", "id": message["id"],
                           "result": [None] * len(message.get("params", {}).get("items", []))
                           if message["method"] == "workspace/configuration" else None})
            elif "method" in message:
                with self.arrived:
                    self.notifications.append(message)
                    self.arrived.notify_all()
            elif "id" in message:
                with self.arrived:
                    self.responses[json.dumps(message["id"])] = message
                    self.arrived.notify_all()

    def write(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()
        self.sent += 1

    def send(self, message: dict[str, Any]) -> None:
        body = json.dumps(message).encode()
        self.write(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))

    def open_document(self, uri: str, text: str) -> None:
        """`textDocument/didOpen` of a Python document."""
        self.send({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": {
            "uri": uri, "languageId": "python", "version": 1, "text": text}}})

    def ask_completion(self, request_id: str, uri: str, line: int, character: int) -> None:
        """An explicitly invoked `textDocument/inlineCompletion`; ``wait`` for its answer."""
        self.send({"jsonrpc": "2.0", "id": request_id, "method": "textDocument/inlineCompletion",
                   "params": {"textDocument": {"uri": uri},
                              "position": {"line": line, "character": character},
                              "context": {"triggerKind": 1}}})

    def wait(self, ids: list[Any], timeout: float = ANSWER_S) -> list[Any]:
        """The ids among ``ids`` still unanswered after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        keys = [json.dumps(i) for i in ids]
        with self.arrived:
            while True:
                missing = [k for k in keys if k not in self.responses]
                if not missing or time.monotonic() > deadline or self.proc.poll() is not None:
                    return [json.loads(k) for k in missing]
                self.arrived.wait(0.1)

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmRSS")

    def initialize(self, slm: dict[str, Any], root: Path | None = None,
                   timeout: float = 120) -> None:
        """`initialize` (with progress and configuration support) and `initialized`."""
        self.send({"jsonrpc": "2.0", "id": "init", "method": "initialize", "params": {
            "processId": os.getpid(), "rootUri": root.as_uri() if root else None,
            "capabilities": {"workspace": {"configuration": True},
                             "window": {"workDoneProgress": True}},
            "initializationOptions": {"slm": slm}}})
        assert self.wait(["init"], timeout) == [], "initialize was not answered"
        self.send({"jsonrpc": "2.0", "method": "initialized", "params": {}})

    def progress_ended(self) -> bool:
        """Whether a `$/progress` end arrived (the index build finished)."""
        with self.arrived:
            return any(n["method"] == "$/progress" and n["params"].get("value", {}).get("kind") == "end"
                       for n in self.notifications)

    def messages(self) -> list[str]:
        """The texts of the `window/showMessage` notifications so far."""
        with self.arrived:
            return [n["params"]["message"] for n in self.notifications
                    if n["method"] == "window/showMessage"]

    def stop(self) -> None:
        """`shutdown` and `exit`, else kill."""
        if self.proc.poll() is None:
            self.send({"jsonrpc": "2.0", "id": "shutdown", "method": "shutdown"})
            self.wait(["shutdown"], 10)
            self.send({"jsonrpc": "2.0", "method": "exit"})
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
