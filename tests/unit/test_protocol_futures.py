"""The server keeps nothing per notification once it is handled (pygls 2.1 kept a future
for each, under an id nothing removed: one per keystroke, for as long as the editor ran)."""

from __future__ import annotations

import time
from typing import Any

from slm_lsp.server import SlmServer


class _Sink:
    """A transport that keeps what the server writes."""

    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: Any) -> None:
        self.written.append(data if isinstance(data, bytes) else str(data).encode())

    def close(self) -> None:
        pass

    def is_closing(self) -> bool:
        return False


def _send(server: SlmServer, message: dict[str, Any]) -> None:
    protocol = server.protocol
    protocol.handle_message(protocol.structure_message({"jsonrpc": "2.0", **message}))


def test_a_thousand_keystrokes_leave_no_futures_behind() -> None:
    server = SlmServer(factory=lambda settings: None)  # no model is loaded in this test
    server.protocol.set_writer(_Sink())  # type: ignore[arg-type]
    _send(server, {"id": 1, "method": "initialize",
                   "params": {"processId": None, "rootUri": None, "capabilities": {}}})
    _send(server, {"method": "initialized", "params": {}})
    uri = "file:///nowhere/a.py"
    _send(server, {"method": "textDocument/didOpen", "params": {"textDocument": {
        "uri": uri, "languageId": "python", "version": 1, "text": ""}}})
    for version in range(2, 1002):
        _send(server, {"method": "textDocument/didChange", "params": {
            "textDocument": {"uri": uri, "version": version},
            "contentChanges": [{"range": {"start": {"line": 0, "character": version - 2},
                                          "end": {"line": 0, "character": version - 2}},
                                "text": "x"}]}})
    deadline = time.monotonic() + 5
    while server.protocol._request_futures and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.protocol._request_futures == {}
    assert server.workspace.get_text_document(uri).source == "x" * 1000  # all were applied


def test_a_finished_index_progress_leaves_no_token_behind() -> None:
    from lsprotocol import types

    from slm_lsp.features.index import _Progress

    class Progress:
        def __init__(self) -> None:
            self.tokens: dict[str, object] = {"slm-index-1": object(), "other": object()}
            self.sent: list[tuple[str, object]] = []

        def report(self, token: str, value: object) -> None:
            self.sent.append((token, value))

        def end(self, token: str, value: object) -> None:
            self.sent.append((token, value))

    class Server:
        work_done_progress = Progress()

        def call_soon(self, fn: Any, *args: Any) -> None:
            fn(*args)

    progress = _Progress.__new__(_Progress)  # without its token request to a client
    progress.ls, progress.token = Server(), "slm-index-1"  # type: ignore[assignment]
    progress._send(types.WorkDoneProgressReport(message="embedding"))
    assert "slm-index-1" in Server.work_done_progress.tokens
    progress._send(types.WorkDoneProgressEnd(message="done"))
    assert list(Server.work_done_progress.tokens) == ["other"]
    assert [token for token, _ in Server.work_done_progress.sent] == ["slm-index-1"] * 2


def test_pending_futures_can_go_while_shutdown_walks_them() -> None:
    server = SlmServer(factory=lambda settings: None)
    futures = server.protocol._request_futures
    futures.update({f"id-{n}": n for n in range(100)})
    for msg_id, _ in futures.items():  # as pygls's shutdown does, while handlers finish
        futures.pop(msg_id, None)
    assert futures == {}
