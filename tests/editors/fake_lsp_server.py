"""A tiny stand-in for `slm-lsp serve` (stdlib only) for editor plugin tests.

It speaks LSP over stdio with canned answers and records what the client sent, so a test can
check the client side without a model:

- advertises inlineCompletionProvider (unless `--no-inline`), completionProvider,
  hoverProvider, codeActionProvider and executeCommandProvider (`slm.reindex`, `slm.search`);
- after `initialized`, asks `workspace/configuration` for section `slm` and sends
  `slm/status` `{"state": "ready"}`;
- answers `textDocument/inlineCompletion` with two items: the rest of a line
  (`FAKE_ONE(1)` plus a second line) and an item with a range covering the word before the
  cursor (`<word>_two()`);
- answers `textDocument/completion` with one item (`<word>_completion()`);
- `workspace/executeCommand` `fake.state` returns everything recorded.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any, BinaryIO

INLINE = "--no-inline" not in sys.argv

state: dict[str, Any] = {
    "initializationOptions": None,
    "configuration": None,
    "didChangeConfiguration": [],
    "executed": [],
    "inlineRequests": [],
    "completionRequests": 0,
    "cursor": [],
}
documents: dict[str, list[str]] = {}
pending: dict[int, str] = {}
next_id = 1000


def read_message(stream: BinaryIO) -> dict[str, Any] | None:
    length = 0
    while True:
        line = stream.readline()
        if not line:
            return None
        line = line.strip()
        if not line:
            break
        name, _, value = line.decode("ascii").partition(":")
        if name.lower() == "content-length":
            length = int(value.strip())
    body = stream.read(length)
    message: dict[str, Any] = json.loads(body)
    return message


def send(message: dict[str, Any]) -> None:
    message["jsonrpc"] = "2.0"
    body = json.dumps(message).encode("utf-8")
    sys.stdout.buffer.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
    sys.stdout.buffer.flush()


def request(method: str, params: Any) -> None:
    global next_id
    next_id += 1
    pending[next_id] = method
    send({"id": next_id, "method": method, "params": params})


def word_before(params: dict[str, Any]) -> str:
    """The identifier characters right before the position."""
    lines = documents.get(params["textDocument"]["uri"], [])
    line_no = params["position"]["line"]
    line = lines[line_no] if line_no < len(lines) else ""
    match = re.search(r"\w*$", line[: params["position"]["character"]])
    return match.group(0) if match else ""


def inline_items(params: dict[str, Any]) -> list[dict[str, Any]]:
    line_no = params["position"]["line"]
    character = params["position"]["character"]
    word = word_before(params)
    start = character - len(word)
    return [
        {"insertText": "FAKE_ONE(1)\nsecond_line()"},
        {
            "insertText": word + "_two()",
            "range": {
                "start": {"line": line_no, "character": start},
                "end": {"line": line_no, "character": character},
            },
        },
    ]


def handle(message: dict[str, Any]) -> bool:
    method = message.get("method")
    msg_id = message.get("id")
    params = message.get("params") or {}
    if method is None:  # a response to one of our requests
        if pending.pop(msg_id, None) == "workspace/configuration":
            state["configuration"] = message.get("result")
        return True
    if method == "initialize":
        state["initializationOptions"] = params.get("initializationOptions")
        caps: dict[str, Any] = {
            "textDocumentSync": 1,
            "completionProvider": {},
            "hoverProvider": True,
            "codeActionProvider": True,
            "executeCommandProvider": {"commands": ["slm.reindex", "slm.search"]},
        }
        if INLINE:
            caps["inlineCompletionProvider"] = True
        send({"id": msg_id, "result": {"capabilities": caps,
                                       "serverInfo": {"name": "fake-slm-lsp"}}})
    elif method == "initialized":
        request("workspace/configuration", {"items": [{"section": "slm"}]})
        send({"method": "slm/status", "params": {"state": "ready", "message": "fake"}})
    elif method == "textDocument/didOpen":
        doc = params["textDocument"]
        documents[doc["uri"]] = doc["text"].split("\n")
    elif method == "textDocument/didChange":
        for change in params["contentChanges"]:
            documents[params["textDocument"]["uri"]] = change["text"].split("\n")
    elif method == "workspace/didChangeConfiguration":
        state["didChangeConfiguration"].append(params.get("settings"))
    elif method == "slm/cursor":
        state["cursor"].append(params)
    elif method == "textDocument/inlineCompletion":
        state["inlineRequests"].append(params.get("context"))
        send({"id": msg_id, "result": {"items": inline_items(params)}})
    elif method == "textDocument/completion":
        state["completionRequests"] += 1
        word = word_before(params)
        send({"id": msg_id, "result": [{"label": word + "_completion",
                                        "insertText": word + "_completion()"}]})
    elif method == "textDocument/hover":
        send({"id": msg_id, "result": {"contents": {"kind": "markdown", "value": "fake hover"}}})
    elif method == "workspace/executeCommand":
        command = params.get("command")
        if command == "fake.state":
            send({"id": msg_id, "result": state})
        else:
            state["executed"].append([command, params.get("arguments")])
            result: Any = None
            if command == "slm.search":
                result = [{"path": "/tmp/x.py", "line": 3, "text": "def x(): pass"}]
            send({"id": msg_id, "result": result})
    elif method == "shutdown":
        send({"id": msg_id, "result": None})
    elif method == "exit":
        return False
    elif msg_id is not None:
        send({"id": msg_id, "result": None})
    return True


def main() -> int:
    stream = sys.stdin.buffer
    while True:
        message = read_message(stream)
        if message is None or not handle(message):
            return 0


if __name__ == "__main__":
    raise SystemExit(main())
