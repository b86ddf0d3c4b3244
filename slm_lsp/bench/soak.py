"""`python -m slm_lsp.bench.soak --minutes 60`: a scripted editing session against one server.

The workspace is a temporary copy of the dev-set packages (their wheels, fetched as the
indexing benchmark does). The real server (installed default model; default settings but
``index.context`` "both", so that the embedding index is built and updated too) starts,
and a seeded script edits at once, as people do, pausing a few seconds between two
actions: it opens files (closing the oldest beyond a few), types lines back in at editor
pace with a completion request per keystroke (the stale one cancelled), jumps the cursor
to far places and asks there, hovers names, and saves (the file is written to disk, then
`didSave`). Every typed line is put back afterwards, so documents keep their size.

The server's resident memory, threads and open file descriptors are sampled every
``--sample-s`` seconds. Memory is compared at rest: ``--warmup-s`` after the first index
build ended the script stops for a rest, then edits for ``--minutes``, then rests again.
A rest lasts `slm.explain.releaseAfterS` and `REST_WINDOW_S` more, and its window is its
last `REST_WINDOW_S`: by then an explanation context (about 75 MiB, kept that long after
a hover) has been freed, and so have the buffers of a re-index after a save (seconds), so
what is left is what the server keeps. Resident memory: the lowest sample of each window
(the median is reported too). Earlier versions compared the lowest sample of the first and
the last minute of editing; with a hover about once a minute, an explanation context
could be open through the whole last minute (bench/soak.md at befd1d0: +111.5 MiB, of
which the 5-minute floors say about 45 were kept). Threads and descriptors leak when the
fewest of the last window outnumber the most sampled since the first (build threads and
timers come and go). With ``--prebuilt``, `slm-lsp index` builds the index into the cache
home before the server starts, so the server's first build only checks it (the editing
script slows a first build to a crawl: it yields to every completion). Writes ``--out``
(JSON) and the Markdown report next to it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lsprotocol import types

from ..settings import ExplainSettings, parse_settings
from .client import BenchServer, Pending
from .index import DEFAULT_DEVSET, Package, fetch_wheel, read_devset, unpack
from .machine import (
    command_block,
    commit,
    commit_text,
    load_average,
    machine,
    machine_line,
    mib,
    proc_status,
)
from .run import load_sources
from .session import PROJECT, warm_up
from .targets import candidate_lines, read_source

GROWTH_LIMIT_MIB = 50.0
"""The most the resident memory may grow from the first window to the last."""
REST_WINDOW_S = 30.0
"""Length of the first and the last window compared: the end of each rest."""
KEYSTROKE_S = 0.08
"""Editor pace while typing."""
MAX_TYPED = 24
"""Characters typed per line at most."""
MAX_OPEN = 4
THINK_S = (0.5, 4.0)
"""Pause between two actions, drawn uniformly: people read before they type, and the index
builds in those pauses (it yields to completions)."""
ANSWER_TIMEOUT_S = 120.0
BUILD_WAIT_S = 1800.0
"""Longest wait for the first index build; without it the run ends with no windows."""
ACTIONS: dict[str, float] = {"type": 45, "jump": 15, "hover": 15, "save": 10, "open": 15}
"""Actions and their weights."""
DEV_SET = (Package("click", "click==8.5.1"), Package("attrs", "attrs==26.1.0"),
           Package("jinja2", "jinja2==3.1.6"))
"""The dev set's packages when its file (``--devset``) is not there."""
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{2,}")


@dataclass
class Tally:
    """What the script did and what came back."""

    actions: Counter[str] = field(default_factory=Counter)
    requests: Counter[str] = field(default_factory=Counter)
    """Outcomes: answered, empty, cancelled, error."""
    errors: list[str] = field(default_factory=list)

    def outcome(self, pending: Pending) -> None:
        answer = pending.answer()
        if answer.error is None:
            self.requests["answered" if answer.text else "empty"] += 1
        elif "cancel" in answer.error.lower():
            self.requests["cancelled"] += 1
        else:
            self.requests["error"] += 1
            if len(self.errors) < 20:
                self.errors.append(answer.error)


def proc_sample(pid: int) -> dict[str, float | int | None]:
    """Resident memory (MiB; in all, anonymous and file-backed), threads and open
    descriptors of a process now."""
    status = proc_status(pid)
    sample: dict[str, float | int | None] = {"rss_mib": mib(status.get("VmRSS")),
                                              "anon_mib": mib(status.get("RssAnon")),
                                              "file_mib": mib(status.get("RssFile")),
                                              "threads": status.get("Threads"), "fds": None}
    try:
        sample["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        pass
    return sample


THREAD_HEAP = 64 << 20
"""glibc's threads' arenas are heaps of at most this size, aligned to it (64-bit)."""
_MAPPING = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \d+ *(.*)$")


def mappings(pid: int) -> dict[str, float]:
    """Resident MiB of a process by what holds it (``/proc/PID/smaps``): each mapped file
    by its name, ``[heap]`` (the main arena), ``[stack]``, the threads' malloc arenas
    (anonymous, aligned to `THREAD_HEAP`), and ``other anonymous`` (blocks mapped on their
    own, Python's object arenas, thread stacks, buffers libraries map). Empty if unreadable."""
    kib: Counter[str] = Counter()
    label = ""
    try:
        with open(f"/proc/{pid}/smaps", encoding="utf-8", errors="replace") as smaps:
            for line in smaps:
                head = _MAPPING.match(line)
                if head:
                    start, end, name = int(head[1], 16), int(head[2], 16), head[3].strip()
                    if name:
                        label = name if name.startswith("[") else Path(name).name
                    elif start % THREAD_HEAP == 0 and end - start <= THREAD_HEAP:
                        label = "threads' malloc arenas"
                    else:
                        label = "other anonymous"
                elif line.startswith("Rss:"):
                    kib[label] += int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return {}
    return {name: round(value / 1024, 1) for name, value in kib.items() if value}


def mapping_growth(first: dict[str, float], last: dict[str, float],
                   top: int = 10) -> list[tuple[str, float, float]]:
    """The ``top`` holders whose resident memory changed most between two `mappings`
    (name, first, last), largest change first; changes under 0.5 MiB left out."""
    rows = [(name, first.get(name, 0.0), last.get(name, 0.0)) for name in {*first, *last}]
    rows = [r for r in rows if abs(r[2] - r[1]) >= 0.5]
    return sorted(rows, key=lambda r: (-abs(r[2] - r[1]), r[0]))[:top]


async def heap_sample(server: BenchServer) -> dict[str, float | None]:
    """The server's C heap in MiB, as its `slm.memory` command reports it: blocks in use,
    free blocks kept by the arenas, blocks mapped on their own; and the thousands of blocks
    Python's object allocator holds (None where it gave none)."""
    answer: Any = None
    try:
        answer = await asyncio.wait_for(server.client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="slm.memory")), 10)
    except Exception:  # noqa: BLE001 - a sample without the heap, not a failed run
        pass
    answer = answer or {}
    heap = answer.get("heap") or {}
    blocks = answer.get("python_blocks")
    return {**{f"heap_{k}_mib": heap.get(k) for k in ("in_use", "free", "mapped")},
            "python_kblocks": None if blocks is None else round(blocks / 1000, 1)}


def workspace_copy(packages: list[Package], into: Path) -> Path:
    """The packages' unpacked wheels side by side in ``into`` (a copy the soak may write)."""
    for package in packages:
        shutil.copytree(unpack(package, fetch_wheel(package)), into / package.slug)
    return into


class Script:
    """The seeded editing session."""

    def __init__(self, server: BenchServer, texts: dict[str, str], seed: int) -> None:
        self.server = server
        self.texts = texts
        self.rng = random.Random(seed)
        self.rows = {rel: candidate_lines(text, "python") for rel, text in texts.items()
                     if rel.endswith(".py")}
        self.rows = {rel: rows for rel, rows in self.rows.items() if rows}
        self.open_docs: list[str] = []
        self.tally = Tally()
        self.saves = 0

    async def step(self) -> None:
        """One action, chosen by weight (files are opened first when none is)."""
        action = ("open" if not self.open_docs
                  else self.rng.choices(list(ACTIONS), list(ACTIONS.values()))[0])
        self.tally.actions[action] += 1
        await asyncio.sleep(self.rng.uniform(*THINK_S))
        await {"open": self.open, "type": self.type, "jump": self.jump, "hover": self.hover,
               "save": self.save}[action]()

    def _doc(self) -> str:
        return self.rng.choice(self.open_docs)

    async def open(self) -> None:
        closed = [rel for rel in self.rows if rel not in self.open_docs]
        rel = self.rng.choice(closed)
        text = read_source(self.server.root / rel)  # saves may have changed it on disk
        self.server.open(rel, self.texts[rel] if text is None else text)
        self.open_docs.append(rel)
        if len(self.open_docs) > MAX_OPEN:
            self.server.close(self.open_docs.pop(0))

    async def type(self) -> None:
        """Cut a line at its indentation and type it back keystroke by keystroke."""
        rel = self._doc()
        row = self.rng.choice(self.rows[rel])
        doc = self.server.docs[rel]
        line = doc.lines[row]
        indent = len(line) - len(line.lstrip())
        self.server.show(rel, "\n".join([*doc.lines[:row], line[:indent], *doc.lines[row + 1:]]))
        pending: Pending | None = None
        for column in range(indent, min(len(line), indent + MAX_TYPED)):
            self.server.type_char(rel, row, column, line[column])
            if pending is not None and not pending.future.done():
                self.server.cancel(pending.msg_id)
            if pending is not None:
                await self._settle(pending)
            pending = self.server.request(rel, row, column + 1)
            await asyncio.sleep(KEYSTROKE_S)
        if pending is not None:
            await self._settle(pending)
        self.server.show(rel, "\n".join([*doc.lines[:row], line, *doc.lines[row + 1:]]))

    async def _settle(self, pending: Pending, timeout: float = ANSWER_TIMEOUT_S) -> None:
        """Wait for an answer (a cancelled request still gets one) and count it."""
        done, _ = await asyncio.wait({pending.future}, timeout=timeout)
        if not done:
            self.tally.requests["error"] += 1
            self.tally.errors.append(f"no answer in {timeout:.0f} s to {pending.target}")
            return
        self.tally.outcome(pending)

    async def jump(self) -> None:
        """Rest the cursor at a far line's end and ask there."""
        rel = self._doc()
        row = self.rng.choice(self.rows[rel])
        column = len(self.server.docs[rel].lines[row])
        self.server.cursor(rel, row, column)
        await self._settle(self.server.request(rel, row, column))

    async def hover(self) -> None:
        """Hover a name on a random code line."""
        rel = self._doc()
        row = self.rng.choice(self.rows[rel])
        names = list(_NAME.finditer(self.server.docs[rel].lines[row]))
        if not names:
            return
        found = self.rng.choice(names)
        future = self.server.client.protocol.send_request_async(
            types.TEXT_DOCUMENT_HOVER, types.HoverParams(
                text_document=types.TextDocumentIdentifier(uri=self.server.docs[rel].uri),
                position=types.Position(row, found.start() + 1)))
        done, _ = await asyncio.wait({future}, timeout=ANSWER_TIMEOUT_S)
        error = (f"no answer in {ANSWER_TIMEOUT_S:.0f} s" if not done
                 else None if future.exception() is None else repr(future.exception()))
        if error is None:
            self.tally.requests["hover answered"] += 1
        else:
            self.tally.requests["error"] += 1
            self.tally.errors.append(f"hover {rel}:{row + 1}: {error}")

    async def save(self) -> None:
        """Change the last line (a comment), write the file and send `didSave`."""
        rel = self._doc()
        doc = self.server.docs[rel]
        self.saves += 1
        self.server.show(rel, "\n".join([*doc.lines[:-1], f"# soak save {self.saves}"]))
        text = "\n".join(doc.lines)
        (self.server.root / rel).write_text(text, encoding="utf-8")
        self.server.client.text_document_did_save(types.DidSaveTextDocumentParams(
            text_document=types.TextDocumentIdentifier(uri=doc.uri), text=text))


SETTINGS: dict[str, Any] = {"index": {"context": "both"}}
"""Defaults, but with similar chunks too, so that the embedding index is built and kept up
to date on every save (the default definition context needs no index)."""


def soak_settings(threads: int = 0, release_s: int | None = None) -> dict[str, Any]:
    """`SETTINGS`, with ``model.threads`` when ``threads`` is not 0 (the default: all cores)
    and ``explain.releaseAfterS`` when ``release_s`` is given (the default: the server's).

    Fewer model threads leave a core to another benchmark running beside the soak, which
    measures memory, threads and descriptors, not speed. A shorter release shortens the
    rests (the five-minute test)."""
    out = dict(SETTINGS)
    if threads:
        out["model"] = {"threads": threads}
    if release_s is not None:
        out["explain"] = {"releaseAfterS": release_s}
    return out


def rest_s(settings: dict[str, Any]) -> float:
    """How long the script rests before a window: until an explanation context opened
    just before has been freed, then the window."""
    return float(parse_settings(settings)[0].explain.release_after_s) + REST_WINDOW_S


async def soak(root: Path, home: Path, minutes: float, warmup_s: float, sample_s: float,
               seed: int, log: Path, settings: dict[str, Any],
               prebuilt: bool = False) -> dict[str, Any]:
    """Run the session; samples, tallies and the growth summary."""
    texts = load_sources(root)
    from ..paths import models_dir

    (home / "models").symlink_to(models_dir().resolve(), target_is_directory=True)
    prebuilt_s = prebuild(root, home) if prebuilt else None
    server = BenchServer(root, settings, log, env=dict(os.environ, SLM_LSP_HOME=str(home)),
                         progress=True)
    samples: list[dict[str, Any]] = []
    started = time.perf_counter()
    await server.start()
    script = Script(server, texts, seed)
    stop = asyncio.Event()

    async def sampler() -> None:
        while not stop.is_set():
            samples.append({"t": round(time.perf_counter() - started, 1),
                            **proc_sample(server.pid), "maps": mappings(server.pid),
                            **await heap_sample(server)})
            try:
                await asyncio.wait_for(stop.wait(), sample_s)
            except asyncio.TimeoutError:
                pass

    task = asyncio.create_task(sampler())
    alive = True
    built: float | None = None
    windows: list[tuple[float, float]] = []

    async def rest() -> None:
        await asyncio.sleep(rest_s(settings))
        now = time.perf_counter() - started
        windows.append((now - REST_WINDOW_S, now))

    try:
        await warm_up(server)
        end = started + BUILD_WAIT_S + warmup_s  # unless the build ends
        while alive and time.perf_counter() < end:
            await script.step()
            alive = server.alive()
            if built is None and server.progress_ends:  # the first build ended: warm up
                built = time.perf_counter() - started
                end = started + built + warmup_s
        if alive:
            await rest()
            end = time.perf_counter() + minutes * 60
            while alive and time.perf_counter() < end:
                await script.step()
                alive = server.alive()
        if alive:
            await rest()
        stop.set()
        await task
    finally:
        stop.set()
        await server.stop()
    measured = growth(samples, *windows) if len(windows) == 2 else {
        "met": False, "why": "the server died before the last window"}
    for sample in samples:  # the breakdown of the two lowest samples is in the growth
        sample.pop("maps", None)
    return {"alive": alive, "seconds": round(time.perf_counter() - started, 1),
            "settings": settings, "prebuilt_s": prebuilt_s,
            "build_ended_s": None if built is None else round(built, 1), "warmup_s": warmup_s,
            "index": server.progress_ends[:1],
            "actions": dict(script.tally.actions), "requests": dict(script.tally.requests),
            "errors": script.tally.errors, "samples": samples,
            "growth": measured}


def prebuild(root: Path, home: Path) -> float:
    """Build the index of ``root`` into cache home ``home`` with `slm-lsp index`; seconds."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "slm_lsp", "index", str(root)], check=True,
                   env=dict(os.environ, SLM_LSP_HOME=str(home)), stdout=subprocess.DEVNULL)
    return round(time.perf_counter() - started, 1)


def growth(samples: list[dict[str, Any]], first_window: tuple[float, float],
           last_window: tuple[float, float]) -> dict[str, Any]:
    """The first window against the last (each a start and an end, in seconds): the lowest
    resident memory of each (a leak raises it, a burst of work does not; medians are kept
    for the report); and threads and descriptors, which leak when the fewest of the last
    window outnumber the most sampled from the first window until the last. Timers' and
    loaders' threads come and go; a pool (asyncio's default executor holds up to six
    threads on two cores) adds a thread once, the first time that many calls overlap,
    which may be after the first window (a CI run: 28 threads at most in the first
    window, 29 from then on). A leaked
    thread or descriptor never returns, so each leaking action raises the floor again."""
    (first_s, first_end), (last_s, last_end) = first_window, last_window
    first = [s for s in samples if first_s <= s["t"] <= first_end]
    last = [s for s in samples if last_s <= s["t"] <= last_end]
    before = [s for s in samples if first_s <= s["t"] < last_s]
    if not first or not last:
        return {"met": False, "why": "no samples in a window"}

    def values(rows: list[dict[str, Any]], key: str) -> list[float]:
        return [float(r[key]) for r in rows if r[key] is not None]

    out: dict[str, Any] = {
        "first_window_s": [round(first_s, 1), round(first_end, 1)],
        "last_window_s": [round(last_s, 1), round(last_end, 1)],
        "rss_first_mib": round(min(values(first, "rss_mib")), 1),
        "rss_last_mib": round(min(values(last, "rss_mib")), 1),
        "rss_first_median_mib": round(statistics.median(values(first, "rss_mib")), 1),
        "rss_last_median_mib": round(statistics.median(values(last, "rss_mib")), 1),
        "rss_max_mib": max(values(samples, "rss_mib"))}
    for name, rows in (("first", first), ("last", last)):  # what the lowest sample held
        low = min((r for r in rows if r["rss_mib"] is not None), key=lambda r: r["rss_mib"])
        out[f"parts_{name}_mib"] = {k: low.get(k) for k in PARTS}
        out[f"maps_{name}_mib"] = low.get("maps") or {}
    out["stretches"] = stretches(samples, first_s)
    for key in ("threads", "fds"):
        out[f"{key}_before_most"] = int(max(values(before or first, key)))
        out[f"{key}_last_fewest"] = int(min(values(last, key)))
    out["rss_growth_mib"] = round(out["rss_last_mib"] - out["rss_first_mib"], 1)
    out["met"] = (out["rss_growth_mib"] <= GROWTH_LIMIT_MIB
                  and out["threads_last_fewest"] <= out["threads_before_most"]
                  and out["fds_last_fewest"] <= out["fds_before_most"])
    return out


STRETCH_S = 300.0
"""The report's course of memory: the lowest sample of each stretch this long."""
PARTS = ("anon_mib", "file_mib", "heap_in_use_mib", "heap_free_mib", "heap_mapped_mib",
         "python_kblocks")
"""What a resident sample is made of: anonymous and file-backed pages (the model's among
the latter), and the C heap's blocks in use, free in its arenas, and mapped alone; and
the thousands of blocks Python's object allocator holds."""


def stretches(samples: list[dict[str, Any]], first_s: float) -> list[dict[str, Any]]:
    """From ``first_s`` on, the lowest resident sample of each `STRETCH_S`, with its parts."""
    out: dict[int, dict[str, Any]] = {}
    for sample in samples:
        if sample["t"] < first_s or sample["rss_mib"] is None:
            continue
        key = int((sample["t"] - first_s) // STRETCH_S)
        if key not in out or sample["rss_mib"] < out[key]["rss_mib"]:
            out[key] = sample
    return [{"from_s": round(first_s + k * STRETCH_S), **{n: v.get(n) for n in
             ("rss_mib", *PARTS)}} for k, v in sorted(out.items())]


def render(result: dict[str, Any]) -> str:
    """The Markdown report."""
    g = result["growth"]
    lines = [
        "# Soak: an editing session against one server",
        "",
        "Written by `python -m slm_lsp.bench.soak` (see its docstring); do not edit by hand.",
        "",
        f"Scripted editing on {', '.join(result['packages'])} with `{json.dumps(result['settings'])}`: "
        + (f"the index was built by `slm-lsp index` before the server started (in "
           f"{result['prebuilt_s']} s), " if result.get("prebuilt_s") is not None else "")
        + f"the first index build ended at {result['build_ended_s']} s, then {result['warmup_s']:.0f} s "
        f"of warm-up, a rest of {rest_s(result['settings']):.0f} s, {result['minutes']} minutes of "
        f"editing and a rest as long; each window is the end of a rest; the server "
        f"{'stayed up' if result['alive'] else 'DIED'}.",
        "",
        f"- actions: {', '.join(f'{k} {v}' for k, v in sorted(result['actions'].items()))}",
        f"- requests: {', '.join(f'{k} {v}' for k, v in sorted(result['requests'].items()))}",
        f"- errors: {len(result['errors'])}" + (f" (first: {result['errors'][0]})"
                                                 if result["errors"] else ""),
        "",
        f"| | at rest after the warm-up ({_window(g, 'first')}) | at rest after the editing "
        f"({_window(g, 'last')}) | growth (limit) |",
        "| --- | ---: | ---: | ---: |",
        f"| resident memory, lowest sample MiB | {g.get('rss_first_mib')} | {g.get('rss_last_mib')} | "
        f"{g.get('rss_growth_mib')} ({GROWTH_LIMIT_MIB:.0f}) |",
        f"| resident memory, median MiB (not judged) | {g.get('rss_first_median_mib')} | "
        f"{g.get('rss_last_median_mib')} | |",
        f"| threads: most before the last window, fewest in it | {g.get('threads_before_most')} | "
        f"{g.get('threads_last_fewest')} | {_diff(g, 'threads')} (0) |",
        f"| open file descriptors: most, fewest | {g.get('fds_before_most')} | "
        f"{g.get('fds_last_fewest')} | {_diff(g, 'fds')} (0) |",
        "",
        f"Highest resident memory sampled: {g.get('rss_max_mib')} MiB. "
        f"Bars met: {g.get('met')}.",
        "",
        *_parts(g),
        f"{machine_line(result)}; commit {commit_text(result)}",
        "",
        *command_block(result["command"]),
    ]
    return "\n".join(lines)


def _parts(g: dict[str, Any]) -> list[str]:
    """What the lowest samples held, and the course of the lowest sample (runs that
    sampled the parts)."""
    first, last = g.get("parts_first_mib") or {}, g.get("parts_last_mib") or {}
    if first.get("anon_mib") is None or last.get("anon_mib") is None:
        return []
    head = ("anonymous", "mapped files", "C heap in use", "C heap free", "C heap mapped alone",
            "Python blocks (thousands)")
    lines = ["What the lowest sample of the first and of the last window held (MiB but the "
             "last column), and the "
             f"lowest sample of every {STRETCH_S / 60:.0f} minutes:", "",
             f"| | resident | {' | '.join(head)} |", "| --- |" + " ---: |" * (len(head) + 1),
             f"| first window | {g.get('rss_first_mib')} | "
             + " | ".join(str(first.get(k)) for k in PARTS) + " |",
             f"| last window | {g.get('rss_last_mib')} | "
             + " | ".join(str(last.get(k)) for k in PARTS) + " |"]
    lines += [f"| from {row['from_s']} s | {row['rss_mib']} | "
              + " | ".join(str(row.get(k)) for k in PARTS) + " |"
              for row in g.get("stretches", [])]
    lines.append("")
    changed = mapping_growth(g.get("maps_first_mib") or {}, g.get("maps_last_mib") or {})
    if changed:
        lines += ["Where the resident memory of those two samples changed most (MiB; from the "
                  "process's memory map):", "", "| | first window | last window | change |",
                  "| --- | ---: | ---: | ---: |",
                  *(f"| {name} | {a} | {b} | {b - a:+.1f} |" for name, a, b in changed), ""]
    return lines


def _window(g: dict[str, Any], which: str) -> str:
    """A window's seconds since the server started, as the report prints them."""
    start, end = g.get(f"{which}_window_s") or (None, None)
    return "no window" if start is None else f"{start:.0f}-{end:.0f} s"


def _diff(g: dict[str, Any], key: str) -> int | None:
    before, last = g.get(f"{key}_before_most"), g.get(f"{key}_last_fewest")
    return None if before is None or last is None else last - before


def run(minutes: float, warmup_s: float, sample_s: float, seed: int,
        devset: Path | None, log: Path, only: str | None = None,
        threads: int = 0, prebuilt: bool = False,
        release_s: int | None = None) -> dict[str, Any]:
    """The whole soak in a temporary workspace and cache home (``only``: the one dev-set
    package of that name; ``threads``: the model's, 0 for the default; ``prebuilt``: the
    index built before the server starts; ``release_s``: `slm.explain.releaseAfterS`,
    None for the server's default)."""
    packages = read_devset(devset) if devset is not None and devset.is_file() else list(DEV_SET)
    if only is not None:
        packages = [p for p in packages if p.name == only]
        if not packages:
            raise SystemExit(f"error: no dev-set package named {only}")
    where = machine()  # before the run: it holds the load average at the start
    with tempfile.TemporaryDirectory(prefix="slm-soak-") as tmp:
        root = workspace_copy(packages, Path(tmp) / "workspace")
        home = Path(tmp) / "home"
        home.mkdir()
        result = asyncio.run(soak(root, home, minutes, warmup_s, sample_s, seed, log,
                                      soak_settings(threads, release_s), prebuilt))
    result.update(minutes=minutes, packages=[p.requirement for p in packages],
                  machine=where, commit=commit(PROJECT), load_end=load_average())
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m slm_lsp.bench.soak",
                                     description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--minutes", type=float, default=60.0,
                        help="measured editing time, after the first build and the warm-up")
    parser.add_argument("--warmup-s", type=float, default=120.0,
                        help="seconds of editing after the first build before the first window")
    parser.add_argument("--sample-s", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--devset", type=Path, default=DEFAULT_DEVSET)
    parser.add_argument("--only", help="one dev-set package (by name) instead of all")
    parser.add_argument("--threads", type=int, default=0,
                        help="model.threads for the server (default 0: the server's default)")
    parser.add_argument("--release-s", type=int, default=None,
                        help="slm.explain.releaseAfterS for the server, which sets how long "
                             "the rests are (default: the server's own, "
                             f"{ExplainSettings.release_after_s})")
    parser.add_argument("--prebuilt", action="store_true",
                        help="build the index with `slm-lsp index` before the server starts")
    parser.add_argument("--out", type=Path, default=PROJECT / "bench" / "soak.json")
    parser.add_argument("--log", type=Path, default=PROJECT / ".bench" / "logs" / "soak.log")
    args = parser.parse_args(argv)
    args.log.parent.mkdir(parents=True, exist_ok=True)
    args.log.unlink(missing_ok=True)
    result = run(args.minutes, args.warmup_s, args.sample_s, args.seed, args.devset, args.log,
                 args.only, args.threads, args.prebuilt, args.release_s)
    result["command"] = shlex.join(["python", "-m", "slm_lsp.bench.soak",
                                    *(sys.argv[1:] if argv is None else argv)])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    args.out.with_suffix(".md").write_text(render(result), encoding="utf-8")
    sys.stderr.write(f"wrote {args.out}: growth {json.dumps(result['growth'])}\n")
    return 0 if result["alive"] and result["growth"].get("met") else 1


if __name__ == "__main__":
    sys.exit(main())
