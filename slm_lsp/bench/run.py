"""Completion benchmark, running part: arms, server sessions, typing replay.

One repository is benchmarked like this (PROTOCOL.md):

1. Targets are drawn once (`targets.select_targets`) and shared by every arm.
2. For each arm, real servers (`client.BenchServer`) get every target's
   two tasks. Each task's document is opened with the target line cut at the
   cursor, completed once, and closed again; documents are never edited here,
   so the index never sees an open buffer.
3. The retrieval arm indexes, for each target file, a copy of the repository
   without that file (its own workspace, its own index, seeded from the full
   repository's index and brought up to date by the server's own build, which
   drops the missing file). The saved index is checked afterwards.
4. Typing replay runs in fresh servers (the result cache of the quality tasks
   would otherwise answer the first keystroke).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..settings import CompletionSettings
from ..workspace import SAVE_DEBOUNCE_S
from .client import Answer, BenchServer, ServerFailed
from .targets import (
    TASKS,
    Target,
    chars_saved,
    edit_similarity,
    exact_match,
    file_names,
    masked_document,
    masked_lines,
    outside_names,
    read_source,
    select_targets,
    source_files,
    typing_subset,
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


@dataclass(frozen=True)
class Arm:
    """One configuration of the server, run on the same targets as the others."""

    name: str
    description: str
    settings: dict[str, Any]
    """Overrides of the `slm` section (wire keys) on top of the benchmark's base."""
    index: bool = False
    requires: tuple[str, ...] = ()
    """Setting keys (`slm.x.y`) the server must know for this arm to mean anything."""


BASE_SETTINGS: dict[str, Any] = {"completion": {"timeoutMs": 600000}}
"""Every arm: no soft timeout, so a cold first request returns the model's answer
instead of an empty list after 8 s (the latency of that answer is what is measured)."""

ARMS: dict[str, Arm] = {a.name: a for a in (
    Arm("no_retrieval", "local prefix and suffix only: index off; KV splice and token healing on",
        {"index": {"enabled": False}}),
    Arm("retrieval", "the project's index (dense + lexical) of the repository without the "
        "target's file; KV splice and token healing on",
        {"index": {"enabled": True}}, index=True, requires=("slm.index.enabled",)),
    Arm("psm_plain", "plain prefix/suffix/middle layout without the latency tricks: index off, "
        "KV splice off (common-prefix reuse only), token healing off; the result cache stays",
        {"index": {"enabled": False}, "model": {"kvSplice": False, "kvSnapshots": 0},
         "completion": {"tokenHealing": False, "warmRegions": 0}},
        requires=("slm.model.kvSplice", "slm.completion.tokenHealing")),
)}


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Nested dictionaries merged, ``extra`` winning."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def arm_settings(arm: Arm, model_path: str | None = None) -> dict[str, Any]:
    """The `slm` section sent to the arm's servers."""
    settings = merge(BASE_SETTINGS, arm.settings)
    if model_path:
        settings = merge(settings, {"model": {"path": model_path}})
    return settings


def pending_reason(arm: Arm) -> str | None:
    """Why an arm cannot run with this server build yet, or None."""
    from ..settings import describe

    known = {row.key for row in describe()}
    missing = [key for key in arm.requires if key not in known]
    if missing:
        return f"the server has no setting {', '.join(missing)} yet"
    return None


def effective_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The whole settings tree the server derives from ``settings`` (snake_case)."""
    from ..settings import as_dict, parse_settings

    parsed, _problems = parse_settings(settings)
    return as_dict(parsed)


# ----- options and progress ------------------------------------------------------------


@dataclass
class Options:
    """How a benchmark run is done."""

    targets: int = 100
    typing: int = 10
    seed: int = 0
    arms: tuple[str, ...] = tuple(ARMS)
    debounce_ms: int = 50
    pace_ms: int = 0
    """0: the next keystroke waits for the answer; else one keystroke every `pace_ms`."""
    think_ms: int = 0
    """Before typing a line: report the cursor there (`slm/cursor`) and wait this long."""
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


# ----- repository copies for the retrieval arm -----------------------------------------


def _slug(root: Path) -> str:
    resolved = str(root.resolve())
    return f"{root.name}-{hashlib.sha256(resolved.encode()).hexdigest()[:8]}"


def copy_without(root: Path, rel: str, copies: Path) -> Path:
    """A copy of ``root`` without the file ``rel``, kept under ``copies`` for re-runs.

    The copy's folder has the original's name, so whatever the server derives
    from the workspace name is the same as for the original.
    """
    key = rel.replace("/", "__")
    target = copies / _slug(root) / key / root.name
    if target.is_dir():
        if (target / rel).exists():
            raise RuntimeError(f"{target} holds {rel}: remove {target.parent} and re-run")
        return target
    staging = target.parent / (root.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    skip = (root / rel).resolve()

    def ignore(folder: str, names: list[str]) -> list[str]:
        return [n for n in names if (Path(folder) / n).resolve() == skip or n == ".git"]

    shutil.copytree(root, staging, symlinks=True, ignore=ignore)
    staging.rename(target)
    return target


def index_folder(root: Path, env: dict[str, str]) -> Path:
    """Where the server running with ``env`` keeps the index of ``root``."""
    code = ("import sys; from pathlib import Path; from slm_lsp.paths import index_dir; "
            "print(index_dir(Path(sys.argv[1])))")
    out = subprocess.run([sys.executable, "-c", code, str(root)], env=env, check=True,
                         capture_output=True, text=True)
    return Path(out.stdout.strip())


def ensure_full_index(root: Path, env: dict[str, str], log: Callable[[str], None]) -> Path:
    """Build (or update) the index of the whole repository with `slm-lsp index`."""
    folder = index_folder(root, env)
    log(f"indexing {root} (slm-lsp index; reused if up to date)")
    subprocess.run([sys.executable, "-m", "slm_lsp", "index", str(root), "--json"], env=env,
                   check=True, stdout=subprocess.DEVNULL)
    return folder


def seed_index(full: Path, copy_root: Path, env: dict[str, str]) -> None:
    """Start the copy's index from the full one (the server's build drops the missing file)."""
    folder = index_folder(copy_root, env)
    if folder.exists() or not full.exists():
        return
    folder.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(full, folder)


def indexed_files(folder: Path) -> list[str] | None:
    """Root-relative files in a saved index, or None if it cannot be read."""
    from indexer import persist
    from indexer.store import META_FILE

    try:
        _info, files = persist.read_generation(folder)
        return sorted(json.loads(files[META_FILE])["files"])
    except Exception:  # noqa: BLE001 - reported as "unknown" by the caller
        return None


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
    server = BenchServer(root, arm_settings(arm, opts.model_path), log_path, env=env,
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
            answer = await server.complete(target.path, target.line, column)
            server.close(target.path)
            record = score(target, task, answer)
            results[(target.key, task)] = record
            progress(target, task, record)
            if arm.index:
                await asyncio.sleep(CLOSE_SETTLE_S)


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
                     "saved": saved, "read_s": round(read, 1), "first_exact": first_exact}


def warms_regions(settings: dict[str, Any]) -> bool:
    """Whether a server with the ``slm`` section ``settings`` warms regions (defaults: yes)."""
    from ..settings import CompletionSettings, ModelSettings

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


# ----- one repository ------------------------------------------------------------------


@dataclass
class Repo:
    """A folder benchmarked as a repository."""

    name: str
    root: Path
    requirement: str | None = None


def load_sources(root: Path) -> dict[str, str]:
    """Root-relative path -> text of the files targets are drawn from."""
    texts: dict[str, str] = {}
    for rel, path in source_files(root):
        text = read_source(path)
        if text is not None:
            texts[rel] = text
    return texts


async def run_repo(repo: Repo, opts: Options) -> dict[str, Any]:
    """Every requested arm on one repository; the repository's raw results."""
    log = opts.log
    texts = load_sources(repo.root)
    targets = select_targets(texts, opts.targets, opts.seed)
    typed = typing_subset(targets, opts.typing)
    env = server_env(opts)
    logs = BENCH_DIR / "logs" / _slug(repo.root)
    shutil.rmtree(logs, ignore_errors=True)
    log(f"{repo.name}: {len(texts)} files, {len(targets)} targets, {len(typed)} typed lines, "
        f"arms {', '.join(opts.arms)}")
    result: dict[str, Any] = {
        "repo": {"name": repo.name, "root": str(repo.root), "requirement": repo.requirement,
                 "files": len(texts)},
        "targets": [t.as_dict() for t in targets],
        "typing_targets": [t.key for t in typed],
        "tasks": {},
        "typing": {},
        "arms": {},
        "servers": {},
    }
    records: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
    for name in opts.arms:
        arm = ARMS[name]
        reason = pending_reason(arm)
        if reason:
            log(f"{repo.name} [{name}]: PENDING ({reason})")
            result["arms"][name] = {"pending": reason}
            continue
        result["arms"][name] = {"description": arm.description}
        records[name] = {}
        started = time.perf_counter()
        try:
            server_info = await run_arm(repo, arm, targets, typed, texts, opts, env, logs,
                                        records[name], result)
        except Exception as exc:  # noqa: BLE001 - one arm's failure must not lose the others
            log(f"{repo.name} [{name}]: FAILED: {exc}\n{traceback.format_exc()}")
            server_info = {"failed": f"{type(exc).__name__}: {exc}"}
        server_info["seconds"] = round(time.perf_counter() - started, 1)
        result["servers"][name] = server_info
    for target in targets:
        for task in TASKS:
            key = (target.key, task)
            result["tasks"][f"{target.key}#{task}"] = {
                "target": target.key, "task": task, "truth": target.truth(task),
                "arms": {arm: recs[key] for arm, recs in records.items() if key in recs},
            }
    annotate_outside(result, texts)
    return result


def annotate_outside(raw: dict[str, Any], texts: dict[str, str]) -> None:
    """Record on each task the names its answer needs from other files (`outside_names`),
    for the default prompt budgets."""
    names = file_names(texts)
    defaults = CompletionSettings()
    targets = {target.key: target for target in (Target(**t) for t in raw["targets"])}
    for task in raw["tasks"].values():
        target = targets[task["target"]]
        task["outside_names"] = outside_names(target, task["task"], texts, names,
                                              defaults.max_prefix_tokens,
                                              defaults.max_suffix_tokens)


def reannotate(doc: dict[str, Any]) -> None:
    """Recompute `outside_names` on the tasks of a results file from the repositories'
    sources when they are still on disk (files written before it existed, or before
    a change to how it is judged); otherwise the file's own annotations stay."""
    for entry in doc.get("repos", {}).values():
        raw = entry.get("raw", {})
        root = Path(entry["repo"]["root"])
        if raw.get("tasks") and root.is_dir():
            annotate_outside(raw, load_sources(root))


async def run_arm(repo: Repo, arm: Arm, targets: Sequence[Target], typed: Sequence[Target],
                  texts: dict[str, str], opts: Options, env: dict[str, str], logs: Path,
                  records: dict[tuple[str, str], dict[str, Any]],
                  result: dict[str, Any]) -> dict[str, Any]:
    """Quality tasks, then the typing replay, for one arm; returns the servers' facts."""
    log = opts.log
    total = len(targets) * len(TASKS)
    done = [0]
    began = time.perf_counter()

    def progress(target: Target, task: str, record: dict[str, Any]) -> None:
        done[0] += 1
        mark = "=" if record["exact"] else ("!" if record["error"] else "~")
        eta = (time.perf_counter() - began) / done[0] * (total - done[0])
        log(f"{repo.name} [{arm.name}] {done[0]}/{total} {target.key} {task} {mark} "
            f"{record['ms'] / 1000:.1f}s (eta {eta / 60:.0f} min)")

    info: dict[str, Any] = {"sessions": [], "leak_check": None}
    groups = _session_groups(targets, arm.index)
    full_index: Path | None = None
    if arm.index:
        full_index = ensure_full_index(repo.root, env, log)
    leaks: list[str] = []
    checked = 0
    for n, (rel, group) in enumerate(groups):
        root = _session_root(repo, rel, opts, env, full_index)
        server, session = await open_session(root, arm, opts, logs / f"{arm.name}-{n}.log", env)
        try:
            await run_tasks(server, group, texts, arm, records, progress)
            if n == len(groups) - 1:
                info.update(server.rss_mib())
                info["idle"] = await server.idle_cpu(3.0, settle=5.0 if arm.index else 1.0)
            session["retrievals"] = len(server.log.retrieved)
            for path, _line, files in server.log.retrieved:
                if rel is not None and rel in files:
                    leaks.append(f"{path}: retrieved {rel}")
        finally:
            await server.stop()
        if rel is not None:
            saved = indexed_files(index_folder(root, env))
            checked += 1
            if saved is None or rel in saved:
                leaks.append(f"saved index of {root} {'unreadable' if saved is None else 'holds'} "
                             f"{rel}")
            session["indexed_files"] = None if saved is None else len(saved)
        info["sessions"].append(session)
        info["splice"] = session["splice"]
    if arm.index:
        info["leak_check"] = {"copies": checked, "problems": leaks}
        if leaks:
            log(f"{repo.name} [{arm.name}]: LEAK CHECK FAILED: {leaks[:3]}")
    result["typing"][arm.name] = await run_typing(repo, arm, typed, texts, opts, env, logs,
                                                  full_index)
    return info


def _session_groups(targets: Sequence[Target],
                    per_file: bool) -> list[tuple[str | None, list[Target]]]:
    """One group per target file (retrieval arm) or one group with everything."""
    if not per_file:
        return [(None, list(targets))] if targets else []
    groups: dict[str, list[Target]] = {}
    for target in targets:
        groups.setdefault(target.path, []).append(target)
    return sorted(groups.items())


def _session_root(repo: Repo, rel: str | None, opts: Options, env: dict[str, str],
                  full_index: Path | None) -> Path:
    """The workspace of a session: the repository, or its copy without ``rel``."""
    if rel is None:
        return repo.root
    root = copy_without(repo.root, rel, BENCH_DIR / "copies")
    if full_index is not None:
        seed_index(full_index, root, env)
    return root


async def run_typing(repo: Repo, arm: Arm, typed: Sequence[Target], texts: dict[str, str],
                     opts: Options, env: dict[str, str], logs: Path,
                     full_index: Path | None) -> dict[str, Any]:
    """The typing replay of ``typed`` in fresh servers; raw samples and per-line results."""
    samples: list[dict[str, Any]] = []
    lines: list[dict[str, Any]] = []
    sessions: list[dict[str, Any]] = []
    for n, (rel, group) in enumerate(_session_groups(typed, arm.index)):
        root = _session_root(repo, rel, opts, env, full_index)
        server, session = await open_session(root, arm, opts,
                                             logs / f"{arm.name}-typing-{n}.log", env)
        try:
            for i, target in enumerate(group):
                first = "first_line" if target.path in server.docs else "first_file"
                to_type = [t for t in group[i:] if t.path == target.path]
                shown = masked_lines(texts[target.path], to_type)
                got, line = await replay_line(server, target, shown, first, opts)
                samples.extend(got)
                lines.append(line)
                ok = [s["ms"] for s in got if s["status"] == "ok" and s["kind"] == "typing"]
                opts.log(f"{repo.name} [{arm.name}] typed {target.key}: first "
                         f"{got[0]['ms'] or 0:.0f} ms, typing median "
                         f"{sorted(ok)[len(ok) // 2] if ok else 0:.0f} ms, saved "
                         f"{line['saved']}/{line['chars']} chars")
        finally:
            await server.stop()
        sessions.append(session)
    return {"samples": samples, "lines": lines, "sessions": sessions}
