"""`python -m slm_lsp.bench.scale`: the server on a repository of thousands of files.

The repository is a pinned source distribution from PyPI (default: Django, 2,800 Python
files with its test suite), fetched with `pip download --no-binary` into `.bench/sdists/`
and unpacked into `.bench/src/`. Runs of the real server (the installed default model,
default settings but for a completion timeout long enough that every answer is timed):

1. *during the build*: ``index.context`` "both", so the server builds the embedding index
   (the default context, definitions, reads source files and builds none); a fresh cache
   home, so this is the first build. As soon as the server is ready, the completion tasks
   are asked while the build runs. Resident memory is sampled throughout; its peak
   (VmHWM) is read when the build ends; every `$/progress` report is recorded.
2. *no build*: the default context (definitions: no embedding index, no build), a fresh
   cache home, the same tasks: the same prompts a request during the build gets, unless
   the partly built index already gives it similar chunks (the log says; they count
   against the build run).
3. *restart*: "both" again on the first run's cache home: how long the saved index takes
   to check (nothing changed, nothing is embedded), and the memory then.

A task is a target line (seeded draw, as in the quality benchmark): after a pause of
`PAUSE_S` (the user reads, or moves to another file) the file is opened with the line cut
at its indentation and a completion is asked there (a newly opened file: a cold prompt),
then three characters of the line are typed, one request each. The build waits while the
user gets completions, so it goes on in the pauses, and whatever step of it a pause began
competes with the next request.
Writes ``--out`` (JSON) and the Markdown report next to it.

With ``--requests-only`` the build run ends after its tasks (no wait for the build, no
restart): the bar on requests during a build in minutes instead of an hour and more.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

from .client import BenchServer
from .machine import (
    command_block,
    commit,
    commit_text,
    load_average,
    machine,
    machine_line,
    model_facts,
)
from .run import load_sources
from .session import BENCH_DIR, PROJECT, warm_up
from .targets import Target, masked_document, select_targets

DEFAULT_REQUIREMENT = "django==5.2.19"
MIN_FILES = 2000
"""The issue's bar: a repository of at least this many source files."""
PEAK_RSS_LIMIT_MIB = 1.6e9 / 2**20
"""1.6 GB, the peak resident memory the first build may reach."""
SLOWER_LIMIT_MS = 1000.0
"""How much slower a completion during the build may be than without one."""
TYPED_CHARS = 3
PAUSE_S = 3.0
"""Before each task: the build runs in this gap (the server waits half a second first)."""
COMPLETION = {"timeoutMs": 600000}
BUILDING: dict[str, Any] = {"completion": COMPLETION, "index": {"context": "both"}}
QUIET: dict[str, Any] = {"completion": COMPLETION, "index": {"context": "definitions"}}
BUILD_TIMEOUT_S = 4 * 3600.0
"""Longest wait for the first build (one embedding thread on a 2-core machine: over an hour)."""
_SIMILAR = re.compile(r"^.*repository context for .*, [1-9][0-9]* similar files$", re.M)
"""A logged completion context that holds search hits."""
SAMPLE_S = 1.0


def fetch_sdist(requirement: str) -> Path:
    """The unpacked source distribution of ``requirement`` under `.bench/src/`."""
    sdists = BENCH_DIR / "sdists"
    sdists.mkdir(parents=True, exist_ok=True)
    name, version = (part.strip() for part in requirement.split("=="))
    stem = f"{name}-{version}".lower()
    found = [p for p in sdists.glob("*.tar.gz") if p.name.lower() == f"{stem}.tar.gz"]
    if not found:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir",
                        "--no-binary", ":all:", "--quiet", "-d", str(sdists), requirement],
                       check=True)
        found = [p for p in sdists.glob("*.tar.gz") if p.name.lower() == f"{stem}.tar.gz"]
    if not found:
        raise SystemExit(f"error: pip downloaded no source distribution for {requirement}")
    target = BENCH_DIR / "src" / stem
    if not target.is_dir():
        staging = target.with_name(target.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        with tarfile.open(found[0]) as archive:
            archive.extractall(staging, filter="data")
        tops = list(staging.iterdir())
        (tops[0] if len(tops) == 1 else staging).rename(target)
        shutil.rmtree(staging, ignore_errors=True)
    return target


class Sampler:
    """The server's resident memory every `SAMPLE_S` while running."""

    def __init__(self, server: BenchServer) -> None:
        self.server = server
        self.max_rss_mib = 0.0
        self._task: asyncio.Task[None] | None = None

    def __enter__(self) -> Sampler:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        while True:
            rss = self.server.rss_mib()["rss_mib"]
            if rss is not None:
                self.max_rss_mib = max(self.max_rss_mib, rss)
            await asyncio.sleep(SAMPLE_S)


async def run_tasks(server: BenchServer, targets: list[Target], texts: dict[str, str],
                    building: bool) -> list[dict[str, Any]]:
    """Each target opened cut at its indentation, completed, then typed into; the records.
    ``building``: note whether the first build had ended when each answer came."""
    records = []
    for target in targets:
        await asyncio.sleep(PAUSE_S)
        doc = masked_document(texts[target.path], target, target.indent)
        server.open(target.path, doc, target.language)
        column = target.indent
        for step in range(TYPED_CHARS + 1):
            if step:
                server.type_char(target.path, target.line, column, target.text[column])
                column += 1
            answer = await server.complete(target.path, target.line, column)
            records.append({"target": target.key, "kind": "typing" if step else "open",
                            "ms": round(answer.ms, 1), "error": answer.error,
                            "during_build": building and not server.progress_ends})
            if column >= len(target.text.rstrip()):
                break
        server.close(target.path)
    return records


async def session(root: Path, home: Path, name: str, settings: dict[str, Any],
                  tasks: tuple[list[Target], dict[str, str]] | None,
                  wait_build: bool = True) -> dict[str, Any]:
    """One server on ``root`` with cache home ``home`` and ``slm`` settings ``settings``:
    ``tasks`` (targets and texts) asked as soon as it is ready, then, when it builds an
    index and ``wait_build``, the build (or the check of a saved one) waited for."""
    log = BENCH_DIR / "logs" / f"scale-{name}.log"
    log.unlink(missing_ok=True)
    indexes = settings["index"]["context"] != "definitions"
    server = BenchServer(root, settings, log, env=_env(home), progress=True)
    started = time.perf_counter()
    await server.start()
    out: dict[str, Any] = {"settings": settings, "start_s": round(time.perf_counter() - started, 1)}
    try:
        with Sampler(server) as sampler:
            if tasks is not None:
                warm = await warm_up(server)
                out["warmup_ms"] = round(warm.ms, 1)
                before = _last_report(server)
                out["tasks"] = await run_tasks(server, *tasks, building=indexes)
                out["build_during_tasks"] = [before, _last_report(server)]
            if indexes and wait_build:
                await _wait_build(server)
                out["index_s"] = round(time.perf_counter() - started, 1)
                out["index"] = server.progress_ends[0]
            out.update(server.rss_mib())
            out["max_sampled_rss_mib"] = sampler.max_rss_mib
        out["progress"] = _progress(server, started)
        out["log"] = str(log.relative_to(PROJECT))
    finally:
        await server.stop()
    out["contexts_with_similar_chunks"] = len(_SIMILAR.findall(log.read_text(encoding="utf-8")))
    return out


def _last_report(server: BenchServer) -> str | None:
    """The build's latest progress message."""
    return server.progress_reports[-1][1] if server.progress_reports else None


async def _wait_build(server: BenchServer) -> None:
    deadline = time.monotonic() + BUILD_TIMEOUT_S
    while not server.progress_ends:
        if not server.alive() or time.monotonic() > deadline:
            raise SystemExit(f"error: the index build did not end; see {server.log.path}")
        await asyncio.sleep(0.2)


def _env(home: Path) -> dict[str, str]:
    import os

    from ..paths import models_dir

    link = home / "models"
    if not link.exists():
        link.symlink_to(models_dir().resolve(), target_is_directory=True)
    return dict(os.environ, SLM_LSP_HOME=str(home))


def _progress(server: BenchServer, started: float) -> dict[str, Any]:
    """How the build reported itself: count, longest silence, first and last messages."""
    reports = server.progress_reports
    times = [started, *(at for at, _, _ in reports)]
    return {"reports": len(reports),
            "longest_gap_s": round(max((b - a for a, b in zip(times, times[1:], strict=False)),
                                       default=0.0), 1),
            "first": [m for _, m, _ in reports[:3]], "last": [m for _, m, _ in reports[-3:]],
            "percentages_rise": all(a[2] is None or b[2] is None or a[2] <= b[2]
                                    for a, b in zip(reports, reports[1:], strict=False))}


def compare(build: list[dict[str, Any]], quiet: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-request slowdown of the build run against the quiet one, by kind, counting only
    the requests answered while the build ran."""
    by_kind: dict[str, Any] = {}
    for kind in ("open", "typing", "all"):
        pairs = [(b["ms"], q["ms"]) for b, q in zip(build, quiet, strict=True)
                 if b["during_build"] and (kind == "all" or b["kind"] == kind)
                 and not b["error"] and not q["error"]]
        if not pairs:
            continue
        slower = [b - q for b, q in pairs]
        by_kind[kind] = {"requests": len(pairs),
                         "build_median_ms": round(statistics.median(b for b, _ in pairs), 1),
                         "quiet_median_ms": round(statistics.median(q for _, q in pairs), 1),
                         "slower_median_ms": round(statistics.median(slower), 1),
                         "slower_mean_ms": round(statistics.fmean(slower), 1),
                         "slower_max_ms": round(max(slower), 1)}
    return by_kind


def _build_section(result: dict[str, Any]) -> list[str]:
    """The report's lines on the first build and the restart (a note with --requests-only)."""
    build = result["build"]
    if "restart" not in result:
        return ["The build run ended after its tasks (`--requests-only`): no whole build, no "
                "restart.", ""]
    restart = result["restart"]
    peak = build["peak_rss_mib"]
    return [
        "## First index build",
        "",
        f"- {build['index']} in {build['index_s']} s after the server started "
        "(`index.context` \"both\")",
        f"- peak resident memory (VmHWM) of the server when the build ended: {peak} MiB "
        f"(limit {PEAK_RSS_LIMIT_MIB:.0f} MiB = 1.6 GB: "
        f"{'met' if peak is not None and peak <= PEAK_RSS_LIMIT_MIB else 'NOT met'}); "
        f"resident then {build['rss_mib']} MiB",
        f"- progress: {build['progress']['reports']} reports, the longest silence "
        f"{build['progress']['longest_gap_s']} s, percentages never fall: "
        f"{build['progress']['percentages_rise']}; first "
        f"{', '.join(repr(m) for m in build['progress']['first'])}; last "
        f"{', '.join(repr(m) for m in build['progress']['last'])}",
        f"- restart on the saved index: checked in {restart['index_s']} s after the start "
        f"({restart['index']}), peak resident memory {restart['peak_rss_mib']} MiB",
        "",
    ]


def render(result: dict[str, Any]) -> str:
    """The Markdown report."""
    build, quiet, cmp = result["build"], result["nobuild"], result["slowdown"]
    worst = cmp.get("all", {}).get("slower_max_ms")
    answered = sum(1 for t in build["tasks"] if t["during_build"])
    lines = [
        "# The server on a large repository",
        "",
        "Written by `python -m slm_lsp.bench.scale` (see its docstring); do not edit by hand.",
        "",
        f"Repository: `{result['requirement']}` source distribution, {result['files']} source "
        f"files with a grammar (the bar: {MIN_FILES}).",
        "",
        *_build_section(result),
        "## Completions during the build",
        "",
        f"{len(result['targets'])} target lines, each opened after a {PAUSE_S:g} s pause, "
        f"cut at its indentation (a cold prompt), and then typed into {TYPED_CHARS} "
        f"characters, one request each; {answered} of {len(build['tasks'])} requests were "
        "answered while the build ran. "
        + (f"The build's progress when the first task began: "
           f"{build['build_during_tasks'][0]!r}; when the last ended: "
           f"{build['build_during_tasks'][1]!r}. " if "build_during_tasks" in build else "")
        + "Slower = the build run's time minus the same request's time in a server with no "
        "build (the default definition context: no embedding index). Contexts with "
        f"similar chunks (from the partly built index) in the build run: "
        f"{build['contexts_with_similar_chunks']}, in the other: "
        f"{quiet['contexts_with_similar_chunks']}.",
        "",
        "| requests | n | median ms, build running | median ms, no build | slower: median | "
        "mean | max |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for kind, row in cmp.items():
        lines.append(f"| {kind} | {row['requests']} | {row['build_median_ms']} | "
                     f"{row['quiet_median_ms']} | {row['slower_median_ms']} | "
                     f"{row['slower_mean_ms']} | {row['slower_max_ms']} |")
    verdict = ("met" if worst is not None and worst <= SLOWER_LIMIT_MS else "NOT met")
    lines += [
        "",
        f"The bar, no request more than {SLOWER_LIMIT_MS:.0f} ms slower: {verdict}.",
        "",
        "## Run",
        "",
        machine_line(result),
        f"- model: {result['model'].get('file')}; commit {commit_text(result)}",
        f"- server logs: {build['log']}, {quiet['log']}",
        *([f"- the run with no build was measured again (`--rerun-quiet`: other work had "
           f"disturbed it), load average at its start {quiet['rerun']['machine']['load_start']}"]
          if "rerun" in quiet else []),
        "",
        *command_block(result["command"],
                       *([result["rerun_command"]] if "rerun_command" in result else [])),
    ]
    return "\n".join(lines)


async def bench(requirement: str, count: int, seed: int,
                rerun_quiet: dict[str, Any] | None = None,
                requests_only: bool = False) -> dict[str, Any]:
    """All three runs (``requests_only``: the build run ends after its tasks, and there is
    no restart); or, given an earlier result (``rerun_quiet``), only the run with no
    build again (when other work on the machine disturbed it), the rest kept."""
    root = fetch_sdist(requirement)
    texts = load_sources(root)
    if len(texts) < MIN_FILES:
        raise SystemExit(f"error: {requirement} has {len(texts)} source files, under {MIN_FILES}")
    targets = select_targets(texts, count, seed)
    sys.stderr.write(f"{requirement}: {len(texts)} files, {len(targets)} targets\n")
    if rerun_quiet is not None:
        if rerun_quiet["targets"] != [t.key for t in targets]:
            raise SystemExit("error: the earlier result has other targets (--requirement, "
                             "--targets and --seed must be the same)")
        result = rerun_quiet
        with tempfile.TemporaryDirectory(prefix="slm-scale-") as tmp:
            result["nobuild"] = await session(root, Path(tmp), "nobuild", QUIET,
                                              (targets, texts))
        result["nobuild"]["rerun"] = {"machine": machine(), "commit": commit(PROJECT)}
    else:
        result = {"requirement": requirement, "files": len(texts), "machine": machine(),
                  "commit": commit(PROJECT), "model": model_facts("", ""),
                  "targets": [t.key for t in targets]}
        with tempfile.TemporaryDirectory(prefix="slm-scale-") as tmp:
            home = Path(tmp)
            build = home / "build"
            build.mkdir()
            result["build"] = await session(root, build, "build", BUILDING, (targets, texts),
                                            wait_build=not requests_only)
            if not requests_only:
                sys.stderr.write(f"build run: {result['build']['index']} in "
                                 f"{result['build']['index_s']} s\n")
            quiet = home / "quiet"
            quiet.mkdir()
            result["nobuild"] = await session(root, quiet, "nobuild", QUIET, (targets, texts))
            if not requests_only:
                result["restart"] = await session(root, build, "restart", BUILDING, None)
    result["slowdown"] = compare(result["build"]["tasks"], result["nobuild"]["tasks"])
    result["load_end"] = load_average()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m slm_lsp.bench.scale",
                                     description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--requirement", default=DEFAULT_REQUIREMENT,
                        help="pinned PyPI requirement of the repository (name==version)")
    parser.add_argument("--targets", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=PROJECT / "bench" / "scale.json")
    parser.add_argument("--rerun-quiet", action="store_true",
                        help="measure only the run with no build again, into --out's result")
    parser.add_argument("--requests-only", action="store_true",
                        help="end the build run after its tasks: no whole build, no restart")
    args = parser.parse_args(argv)
    if "==" not in args.requirement:
        parser.error("--requirement must pin a version (name==version)")
    earlier = None
    if args.rerun_quiet:
        if not args.out.is_file():
            parser.error(f"--rerun-quiet needs an earlier result in {args.out}")
        earlier = json.loads(args.out.read_text(encoding="utf-8"))
    result = asyncio.run(bench(args.requirement, args.targets, args.seed, earlier,
                               args.requests_only))
    command = shlex.join(["python", "-m", "slm_lsp.bench.scale",
                          *(sys.argv[1:] if argv is None else argv)])
    if args.rerun_quiet:
        result["rerun_command"] = command
    else:
        result["command"] = command
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    args.out.with_suffix(".md").write_text(render(result), encoding="utf-8")
    sys.stderr.write(f"wrote {args.out} and {args.out.with_suffix('.md')}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
