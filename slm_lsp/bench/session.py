"""One benchmark server session: options, starting a server for an arm, running its tasks,
the typing replay of one line.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..settings import CompletionSettings
from ..workspace import SAVE_DEBOUNCE_S
from .arms import DEFAULT_ARMS, Arm, arm_settings
from .client import Answer, BenchServer, ServerFailed
from .targets import (
    TASKS,
    Target,
    chars_saved,
    edit_similarity,
    exact_match,
    masked_document,
)

PROJECT = Path(__file__).resolve().parents[2]
BENCH_DIR = PROJECT / ".bench"


CLOSE_SETTLE_S = float(SAVE_DEBOUNCE_S) + 0.3
"""After closing a document in an indexing server, wait this long before reopening it:
the server re-reads a closed file from disk `SAVE_DEBOUNCE_S` after `didClose` (it is
absent in the copy, so nothing is indexed); an open buffer then would be indexed instead."""
EMBEDDER_WAIT_S = 180.0
"""How long a retrieval session waits for the embedder before its first task."""
WARMUP_TEXT = "import os\n\n\ndef home_directory():\n    return os.pa"
"""A scratch document completed once per server (outside the workspace, never indexed)."""


# ----- options and progress ------------------------------------------------------------


@dataclass
class Options:
    """How a benchmark run is done."""

    targets: int = 100
    target_set: str = "random"
    """``random`` or ``crossfile`` (see ``targets.select_crossfile_targets``)."""
    typing: int = 10
    seed: int = 0
    arms: tuple[str, ...] = DEFAULT_ARMS
    debounce_ms: int = 50
    pace_ms: int = 0
    """0: the next keystroke waits for the answer; else one keystroke every `pace_ms`."""
    think_ms: int = 3000
    """Before typing a line: report the cursor there (`slm/cursor`) and wait this long."""
    product_timeout: bool = False
    """Keep the product's request timeout (``slm.completion.timeoutMs``) instead of waiting
    for every answer: a slow first request is answered empty, as the user would see it."""
    read_s: int = 0
    """After opening a file in the typing replay: report the cursor at the line to type and
    wait until the server has warmed the regions around it, at most this long (arms with
    region warm-ups only)."""
    model_path: str | None = None
    home: Path = BENCH_DIR / "home"
    """SLM_LSP_HOME of the servers: the indexes of the repository copies live here."""
    log: Callable[[str], None] = field(default=lambda msg: _stderr(msg))
    """Where progress lines go (stderr by default)."""


def _stderr(message: str) -> None:
    """Print a progress line to stderr."""
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def server_env(opts: Options) -> dict[str, str]:
    """The servers' environment: the benchmark's own cache home, sharing the installed models."""
    from ..paths import models_dir

    models = models_dir()
    opts.home.mkdir(parents=True, exist_ok=True)
    link = opts.home / "models"
    if not link.exists() and not link.is_symlink() and models.is_dir():
        link.symlink_to(models.resolve(), target_is_directory=True)
    env = dict(os.environ)
    env["SLM_LSP_HOME"] = str(opts.home)
    return env


# ----- one server session --------------------------------------------------------------


async def wait_index(server: BenchServer) -> None:
    """Wait for the server's first index build to end (its `$/progress` end report)."""
    while not server.progress_ends:
        proc = server.client._server
        if proc is not None and proc.returncode is not None:
            raise ServerFailed(f"server exited while indexing; see {server.log.path}")
        await asyncio.sleep(0.1)
    if "files" not in server.progress_ends[0]:
        raise ServerFailed(f"indexing did not finish: {server.progress_ends[0]}")


async def open_session(root: Path, arm: Arm, opts: Options, log_path: Path,
                       env: dict[str, str]) -> tuple[BenchServer, dict[str, Any]]:
    """A started, warmed-up server for ``arm`` on workspace ``root``."""
    server = BenchServer(root, arm_settings(arm, opts.model_path, opts.product_timeout), log_path,
                         env=env,
                         progress=arm.index)
    started = time.perf_counter()
    try:
        await server.start(wait_index if arm.index else None)
        info: dict[str, Any] = {"root": str(root),
                                "start_s": round(time.perf_counter() - started, 2),
                                "index": server.progress_ends[0] if arm.index else None}
        warm = await warm_up(server)
        info["warmup_ms"] = round(warm.ms, 1)
        if arm.index:  # the warm-up's search started loading the embedder; wait for dense search
            info["embedder_wait_s"] = await wait_embedder(server, EMBEDDER_WAIT_S)
    except BaseException:
        await server.stop()
        raise
    info["splice"] = server.log.splice
    return server, info


async def wait_embedder(server: BenchServer, timeout: float) -> float | None:
    """Seconds until the server logged its embedding model as loaded (None: not in time)."""
    start = time.perf_counter()
    while not server.log.embedder_loaded:
        if time.perf_counter() - start > timeout or not server.alive():
            return None
        await asyncio.sleep(0.1)
    return round(time.perf_counter() - start, 2)


async def warm_up(server: BenchServer) -> Answer:
    """Complete a scratch document outside the workspace once (one-time costs of a process)."""
    rel = str(Path(os.path.abspath(os.sep)) / "slm-bench-scratch" / "warmup.py")
    server.open(rel, WARMUP_TEXT)
    lines = WARMUP_TEXT.split("\n")
    answer = await server.complete(rel, len(lines) - 1, len(lines[-1]))
    server.close(rel)
    return answer


def score(target: Target, task: str, answer: Answer) -> dict[str, Any]:
    """One task's record."""
    truth = target.truth(task)
    text = answer.text or ""
    return {"text": answer.text, "ms": round(answer.ms, 1), "error": answer.error,
            "exact": exact_match(text, truth), "exact_full": text.strip() == truth.strip(),
            "similarity": round(edit_similarity(text, truth), 4)}


async def run_tasks(server: BenchServer, targets: Sequence[Target], texts: dict[str, str],
                    arm: Arm, results: dict[tuple[str, str], dict[str, Any]],
                    progress: Callable[[Target, str, dict[str, Any]], None]) -> None:
    """Both tasks of each target: open the masked document, complete once, close."""
    for target in targets:
        for task in TASKS:
            column = target.cursor(task)
            server.open(target.path, masked_document(texts[target.path], target, column),
                        target.language)
            seen = len(server.log.suggestions)
            answer = await server.complete(target.path, target.line, column)
            record = score(target, task, answer)
            record.update(await model_answer(server, seen, target.line))
            server.close(target.path)
            results[(target.key, task)] = record
            progress(target, task, record)
            if arm.index:
                await asyncio.sleep(CLOSE_SETTLE_S)


async def model_answer(server: BenchServer, seen: int, row: int,
                       wait_s: float = 1.0) -> dict[str, Any]:
    """What the server logged of the model answer at ``row`` after its ``seen``-th one: which
    model answered, the mean token log-probability, whether it was escalated (empty when
    the answer did not come from a model, e.g. the result cache)."""
    deadline = time.perf_counter() + wait_s
    while True:
        for _path, line, model, logprob, escalated in reversed(server.log.suggestions[seen:]):
            if line == row:
                return {"model": model, "mean_logprob": logprob, "escalated": escalated}
        if time.perf_counter() > deadline or not server.alive():
            return {}
        await asyncio.sleep(0.05)


async def replay_line(server: BenchServer, target: Target, text: str, first_kind: str,
                      opts: Options) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Type the target line one character at a time, asking after each keystroke.

    ``text`` is the document as the cursor arrives: this line and the file's other
    lines still to be typed are empty after their indentation (`masked_lines`).

    Returns per-request samples and the line's summary. With ``opts.pace_ms``
    0 the next keystroke waits for the answer (every keystroke gets a latency);
    otherwise keystrokes come every ``pace_ms`` and a request still running
    when the next one is due is cancelled (`$/cancelRequest`), like an editor.
    """
    code = target.code
    reading = opts.read_s and first_kind == "first_file" and warms_regions(server.settings)
    warmed = server.log.warm_done if reading else 0
    server.show(target.path, text, target.language)
    read = 0.0
    if reading:  # the user reads the new file with the cursor on the line; the server warms
        server.cursor(target.path, target.line, target.indent)
        started = time.perf_counter()
        while server.log.warm_done == warmed and time.perf_counter() - started < opts.read_s:
            await asyncio.sleep(0.2)
        read = time.perf_counter() - started
    if opts.think_ms:  # the user looks at the line before typing; the editor reports the cursor
        server.cursor(target.path, target.line, target.indent)
        await asyncio.sleep(opts.think_ms / 1000)
    samples: list[dict[str, Any]] = []
    shown: list[str | None] = []
    pace = opts.pace_ms / 1000
    start = time.perf_counter()
    first_suggestion: float | None = None
    """Milliseconds from the first request at the line to the first non-empty answer."""
    inflight: Any = None
    for k in range(len(code)):
        if k > 0:
            if pace:
                await asyncio.sleep(max(0.0, start + k * pace - time.perf_counter()))
            server.type_char(target.path, target.line, target.indent + k - 1, code[k - 1])
        await asyncio.sleep(opts.debounce_ms / 1000)
        if inflight is not None:
            samples.append(_settle_stale(server, inflight))
            inflight = None
        pending = server.request(target.path, target.line, target.indent + k)
        kind = first_kind if k == 0 else "typing"
        limit = max(0.0, start + (k + 1) * pace - time.perf_counter()) if pace else 900.0
        done, _ = await asyncio.wait({pending.future}, timeout=limit)
        if done:
            answer = pending.answer()
            status = "ok" if answer.error is None else "error"
            if status == "ok" and answer.text and first_suggestion is None:
                first_suggestion = (time.perf_counter() - start) * 1000
            samples.append({"target": target.key, "k": k, "kind": kind, "status": status,
                            "ms": round(answer.ms, 1), "text": answer.text})
            shown.append(answer.text if status == "ok" else None)
        else:
            shown.append(None)
            if pace:
                inflight = (pending, kind, k)
            else:
                server.cancel(pending.msg_id)
                samples.append({"target": target.key, "k": k, "kind": kind, "status": "error",
                                "ms": None, "text": None})
    if inflight is not None:
        samples.append(_settle_stale(server, inflight))
    server.type_char(target.path, target.line, target.indent + len(code) - 1, code[-1])
    saved = chars_saved(code, shown)
    first = samples[0] if samples and samples[0]["k"] == 0 else None
    first_exact = None if first is None or first["status"] != "ok" else \
        exact_match(first["text"] or "", target.truth("whole_line"))
    return samples, {"target": target.key, "first": first_kind, "chars": len(code),
                     "saved": saved, "read_s": round(read, 1), "first_exact": first_exact,
                     "first_suggestion_ms": None if first_suggestion is None else round(first_suggestion, 1),
                     "first_empty": first is not None and first["status"] == "ok" and not first["text"]}


def warms_regions(settings: dict[str, Any]) -> bool:
    """Whether a server with the ``slm`` section ``settings`` warms regions (defaults: yes)."""
    from ..settings import ModelSettings

    completion, model = settings.get("completion", {}), settings.get("model", {})
    regions: int = completion.get("warmRegions", CompletionSettings().warm_regions)
    snapshots: int = model.get("kvSnapshots", ModelSettings().kv_snapshots)
    return regions > 0 and snapshots > 0


def _settle_stale(server: BenchServer, inflight: Any) -> dict[str, Any]:
    """A request overtaken by a keystroke: its late answer (not shown) or its cancellation."""
    pending, kind, k = inflight
    if pending.future.done():
        answer = pending.answer()
        return {"target": pending.target, "k": k, "kind": kind, "status": "stale",
                "ms": round(answer.ms, 1), "text": answer.text}
    server.cancel(pending.msg_id)
    return {"target": pending.target, "k": k, "kind": kind, "status": "cancelled",
            "ms": None, "text": None}
