"""Completion benchmark, running part: one repository through every arm (server
sessions are in `session`, the arms in `arms`, the repository copies in `copies`).

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

import shutil
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..settings import CompletionSettings
from .arms import ARMS, Arm, pending_reason
from .copies import copy_without, ensure_full_index, index_folder, indexed_files, seed_index, slug
from .session import BENCH_DIR, Options, open_session, replay_line, run_tasks, server_env
from .targets import (
    TASKS,
    Target,
    file_names,
    masked_lines,
    outside_names,
    read_source,
    select_crossfile_targets,
    select_targets,
    source_files,
    typing_subset,
)

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
    pick = select_crossfile_targets if opts.target_set == "crossfile" else select_targets
    targets = pick(texts, opts.targets, opts.seed)
    typed = typing_subset(targets, opts.typing)
    env = server_env(opts)
    logs = BENCH_DIR / "logs" / slug(repo.root)
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
        if server_info.get("context_tokens"):
            result["arms"][name]["context_tokens"] = server_info.pop("context_tokens")
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
            info.setdefault("context_tokens", []).extend(server.log.context_tokens)
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
