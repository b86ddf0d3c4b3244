"""`slm-lsp demo`: a real LSP session against the server on the bundled sample.

It starts `slm-lsp serve` as a subprocess, talks to it with pygls' language
client exactly as an editor would, masks a line of a sample file, asks for an
inline completion and reports what came back and how long it took: the first
request on the file (cold), the next keystroke (warm), and the first request
at another line of the now open file.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.lsp.client import LanguageClient

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sample"
README_BEGIN = "<!-- demo:begin -->"
README_END = "<!-- demo:end -->"


@dataclass
class Target:
    """A masked line: its number, indentation and the text the user would type."""

    line: int
    indent: int
    truth: str


def find_target(text: str, needle: str) -> Target:
    """The line containing ``needle``, with its text after the indentation."""
    for number, line in enumerate(text.split("\n")):
        if needle in line:
            stripped = line.lstrip()
            return Target(number, len(line) - len(stripped), stripped)
    raise ValueError(f"{needle!r} not found in the sample")


def mask(text: str, target: Target) -> str:
    """The text with the target line emptied after its indentation."""
    lines = text.split("\n")
    lines[target.line] = lines[target.line][: target.indent]
    return "\n".join(lines)


class DemoClient:
    """A minimal editor: opens documents, types, asks for inline completions."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.client = LanguageClient("slm-lsp-demo", "1")
        self.states: list[tuple[str, str]] = []

        @self.client.feature("slm/status")
        def _status(params: Any) -> None:
            self.states.append((params.state, params.message))

        @self.client.feature(types.WINDOW_SHOW_MESSAGE)
        def _message(params: types.ShowMessageParams) -> None:
            print(f"  server says: {params.message}", file=sys.stderr)

        @self.client.feature(types.WORKSPACE_CONFIGURATION)
        def _configuration(params: types.ConfigurationParams) -> list[Any]:
            return [None for _ in params.items]

        @self.client.feature(types.WINDOW_WORK_DONE_PROGRESS_CREATE)
        def _progress_create(params: types.WorkDoneProgressCreateParams) -> None:
            return None

        @self.client.feature(types.PROGRESS)
        def _progress(params: types.ProgressParams) -> None:
            return None

    async def start(self, timeout_ms: int) -> None:
        await self.client.start_io(sys.executable, "-m", "slm_lsp", "serve", "--log-level", "warning")
        await self.client.initialize_async(types.InitializeParams(
            capabilities=types.ClientCapabilities(
                text_document=types.TextDocumentClientCapabilities(
                    inline_completion=types.InlineCompletionClientCapabilities()),
                workspace=types.WorkspaceClientCapabilities(configuration=True),
                window=types.WindowClientCapabilities(work_done_progress=True),
            ),
            root_uri=self.root.as_uri(),
            initialization_options={"slm": {"completion": {"timeoutMs": timeout_ms}}},
        ))
        self.client.initialized(types.InitializedParams())
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.states and self.states[-1][0] == "error":
                raise RuntimeError(self.states[-1][1])
            if any(state == "ready" for state, _ in self.states):
                return
            await asyncio.sleep(0.05)
        raise RuntimeError("the server did not become ready in 120 s")

    def open(self, uri: str, text: str) -> None:
        self.client.text_document_did_open(types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id="python", version=1, text=text)))

    def edit(self, uri: str, version: int, line: int, start: int, end: int, text: str) -> None:
        """Replace columns ``start``..``end`` of ``line`` (an incremental didChange)."""
        self.client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[types.TextDocumentContentChangePartial(
                range=types.Range(start=types.Position(line=line, character=start),
                                  end=types.Position(line=line, character=end)),
                text=text)],
        ))

    async def suggest(self, uri: str, line: int, character: int) -> tuple[str, float]:
        start = time.perf_counter()
        result = await self.client.text_document_inline_completion_async(types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=line, character=character),
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Automatic),
        ))
        elapsed = time.perf_counter() - start
        if result is None:
            items: Sequence[types.InlineCompletionItem] = []
        elif isinstance(result, types.InlineCompletionList):
            items = result.items
        else:
            items = result
        text = items[0].insert_text if items else ""
        return (text if isinstance(text, str) else text.value), elapsed

    async def stop(self) -> None:
        await self.client.shutdown_async(None)
        self.client.exit(None)
        await self.client.stop()  # type: ignore[no-untyped-call]


async def run_demo(timeout_ms: int) -> list[str]:
    """Run the session; returns the report lines."""
    path = SAMPLE / "inventory.py"
    text = path.read_text(encoding="utf-8")
    first = find_target(text, "total += unit_price")
    second = find_target(text, "item.quantity -= quantity")
    masked = mask(text, first)
    uri = path.with_name("inventory_demo.py").as_uri()
    demo = DemoClient(SAMPLE)
    t0 = time.perf_counter()
    await demo.start(timeout_ms)
    ready = time.perf_counter() - t0
    try:
        demo.open(uri, masked)
        cold_text, cold = await demo.suggest(uri, first.line, first.indent)
        typed = first.truth[0]
        demo.edit(uri, 2, first.line, first.indent, first.indent, typed)
        warm_text, warm = await demo.suggest(uri, first.line, first.indent + 1)
        # Another line of the open file: clear it as the user would, then ask there.
        demo.edit(uri, 3, second.line, second.indent, second.indent + len(second.truth), "")
        other_text, other = await demo.suggest(uri, second.line, second.indent)
    finally:
        await demo.stop()
    return [
        f"sample: examples/sample/inventory.py, line {first.line + 1} masked",
        f"expected:   {first.truth}",
        f"suggestion: {cold_text}",
        f"exact match: {'yes' if cold_text.strip() == first.truth.strip() else 'no'}",
        f"after typing {typed!r}: {typed}{warm_text}",
        "",
        f"server ready (model loaded):            {ready:6.2f} s",
        f"first request on the file (cold):       {cold:6.2f} s",
        f"next keystroke (warm):                  {warm:6.2f} s",
        f"first request at another line:          {other:6.2f} s",
        f"  expected {second.truth!r}, got {other_text!r}",
    ]


def update_readme(readme: Path, lines: list[str], command: str) -> None:
    """Replace the demo block in the README with this run's output."""
    text = readme.read_text(encoding="utf-8")
    block = "\n".join([README_BEGIN, f"Output of `{command}` on this project's reference machine:", "",
                       "```text", *lines, "```", README_END])
    pattern = re.compile(re.escape(README_BEGIN) + ".*?" + re.escape(README_END), re.S)
    if not pattern.search(text):
        raise SystemExit(f"{readme} has no {README_BEGIN} ... {README_END} block")
    readme.write_text(pattern.sub(lambda _m: block, text), encoding="utf-8")


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the demo session and print the report."""
    try:
        lines = asyncio.run(run_demo(args.timeout_ms))
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    if args.update_readme:
        update_readme(Path(args.update_readme), lines, "slm-lsp demo")
    return 0


def add_parser(subparsers: Any) -> None:
    """Register `slm-lsp demo`."""
    p = subparsers.add_parser("demo", help="a real LSP session on the bundled sample, with latency")
    p.add_argument("--timeout-ms", type=int, default=120000,
                   help="completion time budget for the demo (generous: the first request is cold)")
    p.add_argument("--update-readme", metavar="README", help="write the report into README.md")
    p.set_defaults(func=cmd_demo)
