"""Completion benchmark, protocol part: the real server in a subprocess, a real LSP client.

`BenchServer` starts `python -m slm_lsp serve`, talks to it with pygls' own
`LanguageClient` over stdio, and behaves like an editor: documents are opened
once and then edited with incremental `didChange`, requests carry the
editor's own ids so stale ones can be cancelled with `$/cancelRequest`.
It also reads what only the operating system knows about the server: its
resident memory and whether it burns CPU while nobody types.
"""

from __future__ import annotations

import asyncio
import collections
import os
import re
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.lsp.client import LanguageClient

from .machine import mib, proc_status
from .targets import utf16_column

PROJECT = Path(__file__).resolve().parents[2]
"""The servers' working directory (this checkout, never a benchmarked repository)."""
REQUEST_TIMEOUT_S = 900.0
"""A request that takes longer than this is recorded as an error (the server hangs)."""


@dataclass
class Answer:
    """What one inline completion request gave back."""

    text: str | None
    """The suggestion (first item's text); "" for an empty list; None on error."""
    ms: float
    """Client-side time from sending the request to receiving the answer."""
    error: str | None = None


@dataclass
class Pending:
    """A request on its way: the editor's id for it, its future, and when it was sent."""

    msg_id: str
    target: str
    future: asyncio.Future[Any]
    sent: float
    done: float | None = None
    """When the answer arrived (set by a done-callback, so waiting late does not skew it)."""

    def answer(self) -> Answer:
        """The answer of a finished request."""
        return BenchServer.answer_of(self.future, self.sent, self.done)


@dataclass
class Document:
    """The client's copy of an open document."""

    uri: str
    lines: list[str]
    version: int = 1

    @property
    def text(self) -> str:
        """The whole text."""
        return "\n".join(self.lines)


@dataclass
class ServerLog:
    """The server's stderr: written to a file, last lines and a few facts kept in memory."""

    path: Path
    tail: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=200))
    splice: bool | None = None
    """The backend's KV splice as logged when the model loaded."""
    retrieved: list[tuple[str, int, list[str]]] = field(default_factory=list)
    """(path, 0-based line, retrieved file paths) per retrieval logged by the server."""
    embedder_loaded: bool = False
    """The server logged that its embedding model is loaded (dense retrieval available)."""
    warm_done: int = 0
    """How often the server logged that its region warm-ups were done."""
    context_tokens: list[int] = field(default_factory=list)
    """Tokens of each new repository context the server logged (one per band)."""
    suggestions: list[tuple[str, int, str, float | None, bool]] = field(default_factory=list)
    """(path, 0-based line, model, mean token log-probability, escalated) per model answer."""

    _LOADED = re.compile(r"loaded .*splice (True|False)\b")
    _RETRIEVED = re.compile(r"retrieved \d+ files \((.*)\) for (.+):(\d+) in ")
    _CONTEXT = re.compile(r"repository context for .+:\d+: (\d+) tokens")
    _SUGGESTION = re.compile(r"suggestion for (.+):(\d+) by (.+) \(mean logprob (\S+?)(, escalated)?\)$")

    def feed(self, line: str) -> None:
        """Record one line of the server's stderr."""
        self.tail.append(line)
        loaded = self._LOADED.search(line)
        if loaded:
            self.splice = loaded.group(1) == "True"
        if "loaded embedding model" in line:
            self.embedder_loaded = True
        if "region warm-ups done" in line:
            self.warm_done += 1
        context = self._CONTEXT.search(line)
        if context:
            self.context_tokens.append(int(context.group(1)))
        suggestion = self._SUGGESTION.search(line)
        if suggestion:
            path, row, model, logprob, escalated = suggestion.groups()
            self.suggestions.append((path, int(row), model,
                                     None if logprob == "none" else float(logprob), bool(escalated)))
        found = self._RETRIEVED.search(line)
        if found:
            names = [] if found.group(1) == "none" else found.group(1).split(", ")
            self.retrieved.append((found.group(2), int(found.group(3)), names))


class ServerFailed(RuntimeError):
    """The server could not be started or stopped answering."""


class BenchServer:
    """One `slm-lsp serve` process and the editor-like client that drives it."""

    def __init__(self, root: Path, settings: dict[str, Any], log_path: Path,
                 *, env: dict[str, str] | None = None, progress: bool = False) -> None:
        """A server for workspace ``root`` with the ``slm`` settings section ``settings``;
        ``progress`` lets the server report work (indexing) with `$/progress`."""
        self.root = root.resolve()
        self.settings = settings
        self.log = ServerLog(log_path)
        self.env = env
        self.progress = progress
        self.client = LanguageClient("slm-lsp-bench", "1")
        self.states: list[tuple[str, str]] = []
        self.messages: list[str] = []
        self.progress_ends: list[str] = []
        """Messages of the `$/progress` "end" reports received."""
        self.progress_reports: list[tuple[float, str, int | None]] = []
        """(arrival, message, percentage) of the `$/progress` "report"s received."""
        self.docs: dict[str, Document] = {}
        self._stderr_task: asyncio.Task[None] | None = None
        self._register_handlers()

    # ----- process -----------------------------------------------------------------------

    def _on(self, method: str, handler: Callable[..., Any]) -> None:
        """Handle a server-to-client message (pygls' decorator is untyped)."""
        self.client.feature(method)(handler)

    def _register_handlers(self) -> None:
        states, messages, ends = self.states, self.messages, self.progress_ends
        reports = self.progress_reports

        def on_status(params: Any) -> None:
            states.append((str(getattr(params, "state", "")), str(getattr(params, "message", ""))))

        def on_message(params: types.ShowMessageParams) -> None:
            messages.append(params.message)

        def ignore(params: Any) -> None:
            return None

        def on_progress(params: Any) -> None:
            value = getattr(params, "value", None)
            if isinstance(value, dict):
                kind, message, share = (value.get("kind"), value.get("message"),
                                        value.get("percentage"))
            else:
                kind, message, share = (getattr(value, "kind", None),
                                        getattr(value, "message", None),
                                        getattr(value, "percentage", None))
            if kind == "end":
                ends.append(str(message or ""))
            elif kind == "report":
                reports.append((time.perf_counter(), str(message or ""), share))

        self._on("slm/status", on_status)
        self._on(types.WINDOW_SHOW_MESSAGE, on_message)
        self._on(types.WINDOW_LOG_MESSAGE, ignore)
        self._on(types.WINDOW_WORK_DONE_PROGRESS_CREATE, ignore)
        self._on(types.PROGRESS, on_progress)
        self._on("slm/suggestionReady", ignore)

    @property
    def pid(self) -> int:
        """The server's process id."""
        proc = self.client._server
        if proc is None:
            raise ServerFailed("the server is not running")
        return proc.pid

    def alive(self) -> bool:
        """True while the server process runs."""
        proc = self.client._server
        return proc is not None and proc.returncode is None

    async def start(self, ready: Callable[[BenchServer], Awaitable[None]] | None = None,
                    timeout: float = 600.0) -> None:
        """Start the server, initialize it, and wait until the model is ready
        (and whatever else ``ready`` waits for)."""
        env = dict(os.environ if self.env is None else self.env)
        env.update({"PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
        self.log.path.parent.mkdir(parents=True, exist_ok=True)
        # Not the workspace as working directory: `python -m` puts it first on sys.path,
        # and a repository holding a package named like a dependency (attrs, click, ...)
        # would be imported by the server instead of the installed one.
        await self.client.start_io(sys.executable, "-m", "slm_lsp", "serve", "--log-level", "info",
                                   env=env, cwd=str(PROJECT))
        self._stderr_task = asyncio.create_task(self._drain_stderr())
        uri = self.root.as_uri()
        await asyncio.wait_for(self.client.initialize_async(types.InitializeParams(
            capabilities=types.ClientCapabilities(
                text_document=types.TextDocumentClientCapabilities(
                    inline_completion=types.InlineCompletionClientCapabilities(),
                    synchronization=types.TextDocumentSyncClientCapabilities(did_save=True),
                ),
                window=types.WindowClientCapabilities(work_done_progress=self.progress),
            ),
            process_id=os.getpid(),
            root_uri=uri,
            workspace_folders=[types.WorkspaceFolder(uri=uri, name=self.root.name)],
            initialization_options={"slm": self.settings},
        )), timeout)
        self.client.initialized(types.InitializedParams())
        await self.wait_state("ready", timeout)
        if ready is not None:
            await asyncio.wait_for(ready(self), timeout)

    async def _drain_stderr(self) -> None:
        proc = self.client._server
        if proc is None or proc.stderr is None:
            return
        with self.log.path.open("a", encoding="utf-8", buffering=1) as out:
            while True:
                raw = await proc.stderr.readline()
                if not raw:
                    return
                line = raw.decode("utf-8", errors="replace").rstrip("\n")
                out.write(line + "\n")
                self.log.feed(line)

    async def wait_state(self, state: str, timeout: float) -> None:
        """Wait for an `slm/status` notification with ``state``; an error state raises."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(s == state for s, _ in self.states):
                return
            errors = [m for s, m in self.states if s == "error"]
            if errors:
                raise ServerFailed(f"server error: {errors[-1]}")
            proc = self.client._server
            if proc is not None and proc.returncode is not None:
                raise ServerFailed(f"server exited ({proc.returncode}); see {self.log.path}")
            await asyncio.sleep(0.05)
        raise ServerFailed(f"no {state!r} status after {timeout:.0f} s; see {self.log.path}")

    async def stop(self) -> None:
        """Shut the server down politely, or kill it."""
        proc = self.client._server
        try:
            if proc is not None and proc.returncode is None:
                await asyncio.wait_for(self.client.shutdown_async(None), 30)
                self.client.exit(None)
                await asyncio.wait_for(proc.wait(), 30)
        except (asyncio.TimeoutError, Exception):  # noqa: BLE001 - make sure it ends below
            if proc is not None and proc.returncode is None:
                proc.kill()
                await proc.wait()
        try:
            await asyncio.wait_for(self.client.stop(), 10)  # type: ignore[no-untyped-call]
        except (asyncio.TimeoutError, Exception):  # noqa: BLE001 - best effort
            pass
        if self._stderr_task is not None:
            self._stderr_task.cancel()

    # ----- documents ---------------------------------------------------------------------

    def uri_of(self, rel: str) -> str:
        """The URI of a root-relative (or absolute) path; the file need not exist."""
        path = Path(rel)
        return (path if path.is_absolute() else self.root / path).as_uri()

    def open(self, rel: str, text: str, language: str = "python") -> Document:
        """`didOpen` with ``text``."""
        doc = Document(self.uri_of(rel), text.split("\n"))
        self.docs[rel] = doc
        self.client.text_document_did_open(types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=doc.uri, language_id=language,
                                                 version=doc.version, text=text)))
        return doc

    def close(self, rel: str) -> None:
        """`didClose`."""
        doc = self.docs.pop(rel)
        self.client.text_document_did_close(types.DidCloseTextDocumentParams(
            text_document=types.TextDocumentIdentifier(uri=doc.uri)))

    def show(self, rel: str, text: str, language: str = "python") -> Document:
        """Make the document hold ``text``: open it, or send the changed lines
        as incremental edits (the line count must not change)."""
        doc = self.docs.get(rel)
        if doc is None:
            return self.open(rel, text, language)
        wanted = text.split("\n")
        if len(wanted) != len(doc.lines):
            raise ValueError("show() keeps the number of lines; edit lines only")
        changes = [self._line_edit(doc, row, new) for row, (old, new)
                   in enumerate(zip(doc.lines, wanted, strict=True)) if old != new]
        if changes:
            self._send(doc, changes)
        return doc

    @staticmethod
    def _line_edit(doc: Document, row: int, new: str) -> types.TextDocumentContentChangeEvent:
        """Replace what differs in one line (after the common start and end)."""
        old = doc.lines[row]
        start = 0
        while start < min(len(old), len(new)) and old[start] == new[start]:
            start += 1
        end_old, end_new = len(old), len(new)
        while end_old > start and end_new > start and old[end_old - 1] == new[end_new - 1]:
            end_old, end_new = end_old - 1, end_new - 1
        doc.lines[row] = new
        return types.TextDocumentContentChangePartial(
            range=types.Range(start=types.Position(row, utf16_column(old, start)),
                              end=types.Position(row, utf16_column(old, end_old))),
            text=new[start:end_new])

    def type_char(self, rel: str, row: int, column: int, char: str) -> None:
        """Insert one character at (row, character index) like a keystroke."""
        doc = self.docs[rel]
        line = doc.lines[row]
        pos = types.Position(row, utf16_column(line, column))
        doc.lines[row] = line[:column] + char + line[column:]
        self._send(doc, [types.TextDocumentContentChangePartial(
            range=types.Range(start=pos, end=pos), text=char)])

    def _send(self, doc: Document, changes: list[types.TextDocumentContentChangeEvent]) -> None:
        doc.version += 1
        self.client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=doc.uri, version=doc.version),
            content_changes=changes))

    # ----- requests ----------------------------------------------------------------------

    def request(self, rel: str, row: int, column: int) -> Pending:
        """Send an automatic inline completion request at (row, character index)."""
        doc = self.docs[rel]
        params = types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=doc.uri),
            position=types.Position(row, utf16_column(doc.lines[row], column)),
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Automatic))
        msg_id = f"bench-{uuid.uuid4().hex[:12]}"
        sent = time.perf_counter()
        future = self.client.protocol.send_request_async(
            types.TEXT_DOCUMENT_INLINE_COMPLETION, params, msg_id=msg_id)
        pending = Pending(msg_id, f"{rel}:{row + 1}", future, sent)

        def arrived(_future: asyncio.Future[Any]) -> None:
            pending.done = time.perf_counter()

        future.add_done_callback(arrived)
        return pending

    def cursor(self, rel: str, row: int, column: int) -> None:
        """`slm/cursor`: where the cursor came to rest, as the editor integrations report it."""
        doc = self.docs[rel]
        self.client.protocol.notify("slm/cursor", {
            "textDocument": {"uri": doc.uri},
            "position": {"line": row, "character": utf16_column(doc.lines[row], column)}})

    def cancel(self, msg_id: str) -> None:
        """`$/cancelRequest` for a request the editor no longer wants."""
        self.client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=msg_id))

    @staticmethod
    def answer_of(future: asyncio.Future[Any], sent: float, at: float | None = None) -> Answer:
        """The answer in a finished request future."""
        ms = ((at if at is not None else time.perf_counter()) - sent) * 1000
        try:
            result = future.result()
        except Exception as exc:  # noqa: BLE001 - an error answer is data here
            return Answer(None, ms, f"{type(exc).__name__}: {exc}")
        items = result.items if isinstance(result, types.InlineCompletionList) else (result or [])
        if not items:
            return Answer("", ms)
        text = items[0].insert_text
        return Answer(text if isinstance(text, str) else text.value, ms)

    async def complete(self, rel: str, row: int, column: int,
                       timeout: float = REQUEST_TIMEOUT_S) -> Answer:
        """One request, awaited (the quality tasks)."""
        if not self.alive():
            raise ServerFailed(f"the server is gone; see {self.log.path}")
        pending = self.request(rel, row, column)
        done, _ = await asyncio.wait({pending.future}, timeout=timeout)
        if not done:
            self.cancel(pending.msg_id)
            return Answer(None, (time.perf_counter() - pending.sent) * 1000,
                          f"no answer in {timeout:.0f} s")
        return pending.answer()

    # ----- operating system view ---------------------------------------------------------

    def rss_mib(self) -> dict[str, float | None]:
        """Resident memory now and at its peak (VmRSS, VmHWM), in MiB."""
        try:
            status = proc_status(self.pid)
        except ServerFailed:
            status = {}
        return {"rss_mib": mib(status.get("VmRSS")), "peak_rss_mib": mib(status.get("VmHWM"))}

    def cpu_seconds(self) -> float | None:
        """User plus system CPU time the server has used so far (all its threads)."""
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text()
        except (OSError, ServerFailed):
            return None
        fields = stat[stat.rfind(")") + 2:].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    async def idle_cpu(self, seconds: float = 3.0, settle: float = 1.0) -> dict[str, Any]:
        """CPU the server uses while nothing is asked of it, over ``seconds``."""
        await asyncio.sleep(settle)
        before = self.cpu_seconds()
        await asyncio.sleep(seconds)
        after = self.cpu_seconds()
        if before is None or after is None:
            return {"seconds": seconds, "cpu_seconds": None, "cpu_percent": None, "busy": None}
        used = after - before
        return {"seconds": seconds, "cpu_seconds": round(used, 3),
                "cpu_percent": round(100 * used / seconds, 1), "busy": used / seconds > 0.02}
