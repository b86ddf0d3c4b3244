"""`slm-lsp bench`: completion quality and latency through the real server (PROTOCOL.md).

    slm-lsp bench REPO [--targets N] [--typing N] [--arms ...] [--output FILE]
    slm-lsp bench --devset [DEVSET.toml]            (what `make bench` runs)
    python -m slm_lsp.bench devset [--devset DEVSET.toml] [--targets N]

Each repository is completed by real `slm-lsp serve` processes driven by a real
LSP client, in three arms on identical targets (no retrieval, retrieval,
plain prefix/suffix/middle), plus a typing replay for latency. The dev-set run
writes `bench/results.json` and renders `BENCHMARKS.md` from it.

This module only parses arguments; the work is in `run` (servers), `targets`
(targets and scores) and `report` (summaries, Markdown). The product never
imports this package: `slm-lsp bench` hands its arguments to `main` here.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .arms import ARMS, DEFAULT_ARMS

PROJECT = Path(__file__).resolve().parents[2]
DEFAULT_DEVSET = PROJECT.parent / "shared" / "bench" / "devset.toml"
DEVSET_OUTPUT = PROJECT / "bench" / "results.json"
DEVSET_REPORT = PROJECT / "BENCHMARKS.md"
MODULE_PROG = "python -m slm_lsp.bench"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The benchmark's options (shared by `slm-lsp bench` and `python -m slm_lsp.bench`)."""
    p.add_argument("repo", nargs="?", metavar="REPO", help="repository folder to benchmark")
    p.add_argument("--devset", nargs="?", const=str(DEFAULT_DEVSET), metavar="TOML",
                   help="run every repository of the dev set (default file: "
                        "../shared/bench/devset.toml), fetched from PyPI with pip")
    p.add_argument("--repos", nargs="+", metavar="NAME", help="only these dev-set entries")
    p.add_argument("--target-set", choices=("random", "crossfile"), default="random",
                   help="random: lines drawn uniformly from function bodies; crossfile: lines whose "
                   "answer uses a name from another file (or far away in the same file) that the "
                   "prompt does not show, cut at that name (the CrossCodeEval way)")
    p.add_argument("--targets", type=int, default=100, metavar="N",
                   help="target lines per repository (default: 100)")
    p.add_argument("--typing", type=int, default=10, metavar="N",
                   help="lines typed character by character per repository and arm "
                        "(default: 10)")
    p.add_argument("--seed", type=int, default=0, help="target selection and bootstrap seed")
    p.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(DEFAULT_ARMS),
                   metavar="ARM", help=f"arms to run (default: {', '.join(DEFAULT_ARMS)}; also "
                   "budget_p<P>_s<S>: the prompt-budget curve)")
    p.add_argument("--output", type=Path, metavar="FILE",
                   help="results JSON (default: bench/results.json for the dev set, "
                        ".bench/runs/NAME.json for one repository)")
    p.add_argument("--report", type=Path, metavar="FILE",
                   help="Markdown report (default: BENCHMARKS.md for the dev set, "
                        "none for one repository)")
    p.add_argument("--render", type=Path, metavar="RESULTS",
                   help="only re-render the report from an existing results JSON")
    p.add_argument("--debounce-ms", type=int, default=50,
                   help="typing replay: wait after a keystroke before asking (default: 50)")
    p.add_argument("--pace-ms", type=int, default=0,
                   help="typing replay: one keystroke every N ms, cancelling stale requests "
                        "(default 0: each keystroke waits for the answer)")
    p.add_argument("--product-timeout", action="store_true",
                   help="keep the product's request timeout (slm.completion.timeoutMs): a slow "
                   "first request is answered empty and the time to the first suggestion keeps "
                   "running (default: every answer is waited for)")
    p.add_argument("--think-ms", type=int, default=3000,
                   help="typing replay: report the cursor at the line (slm/cursor, as the editor "
                        "integrations do once it rests) and pause this long before the first "
                        "keystroke (default 3000, as people work; 0: type at once, no report)")
    p.add_argument("--read-s", type=int, default=0,
                   help="typing replay: after opening a file, report the cursor at the line to "
                        "type and wait until the server has warmed the regions around it, at "
                        "most this many seconds (default 0: type at once)")
    p.add_argument("--model-path", help="GGUF file for the servers (default: the default model)")


def parse_module_args(argv: list[str], prog: str = MODULE_PROG
                      ) -> tuple[argparse.Namespace, str, list[str]]:
    """Arguments of `python -m slm_lsp.bench [devset] ...`: (args, program, shown argv).

    A leading `devset` word means `--devset` (with the default file unless given).
    """
    parser = argparse.ArgumentParser(prog=prog, description=(__doc__ or "").splitlines()[0])
    shown = list(argv)
    if argv[:1] == ["devset"]:
        argv = argv[1:]
        if "--devset" not in argv:
            argv = ["--devset", *argv]
        prog += " devset"
        shown = shown[1:]
    add_arguments(parser)
    return parser.parse_args(argv), prog, shown


def main(argv: list[str] | None = None, prog: str = MODULE_PROG) -> int:
    """`python -m slm_lsp.bench [devset] ...`, and `slm-lsp bench ...` (with its ``prog``)."""
    args, prog, shown = parse_module_args(list(sys.argv[1:] if argv is None else argv), prog)
    return run(args, prog, shown)


def run(args: argparse.Namespace, prog: str, shown: list[str]) -> int:
    """Run the benchmark described by ``args``; returns the exit status."""
    from . import report as bench_report

    if args.render:
        doc = json.loads(args.render.read_text(encoding="utf-8"))
        from .run import reannotate

        reannotate(doc)
        report = args.report or DEVSET_REPORT
        report.write_text(bench_report.render(doc), encoding="utf-8")
        print(f"wrote {report}", file=sys.stderr)
        return 0
    if bool(args.repo) == bool(args.devset):
        print("error: give a repository folder or --devset (not both)", file=sys.stderr)
        return 2
    if args.targets < 1 or args.typing < 0:
        print("error: --targets must be at least 1 and --typing at least 0", file=sys.stderr)
        return 2
    from .run import Repo

    if args.devset:
        repos = devset_repos(Path(args.devset), args.repos)
        output = args.output or DEVSET_OUTPUT
        report = args.report or DEVSET_REPORT
    else:
        root = Path(args.repo).resolve()
        if not root.is_dir():
            print(f"error: {root} is not a folder", file=sys.stderr)
            return 2
        repos = [Repo(root.name, root)]
        output = args.output or PROJECT / ".bench" / "runs" / f"{root.name}.json"
        report = args.report
    command = shlex.join([*prog.split(), *shown])
    doc = run_repos(repos, args, command, output)
    if report is not None:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(bench_report.render(doc), encoding="utf-8")
        print(f"wrote {report}", file=sys.stderr)
    print(json.dumps({k: doc[k] for k in ("arms", "retrieval_vs_no_retrieval", "latency")},
                     indent=1))
    return 0


def devset_repos(path: Path, only: list[str] | None) -> list[Any]:
    """The dev set's packages, fetched and unpacked (the index benchmark's helpers)."""
    from .index import fetch_wheel, read_devset, unpack
    from .run import Repo

    repos = []
    for package in read_devset(path):
        if only and package.name not in only:
            continue
        root = unpack(package, fetch_wheel(package))
        repos.append(Repo(package.name, root, package.requirement))
    if not repos:
        raise SystemExit(f"no dev-set entries selected from {path}")
    return repos


def run_repos(repos: list[Any], args: argparse.Namespace, command: str,
              output: Path) -> dict[str, Any]:
    """Benchmark each repository, writing the results file after each one."""
    import asyncio

    from ..settings import ModelSettings
    from . import machine as bench_machine
    from . import summary
    from .arms import ARMS, arm_settings, effective_settings
    from .run import run_repo
    from .session import Options

    opts = Options(targets=args.targets, typing=args.typing, seed=args.seed,
                   target_set=args.target_set,
                   arms=tuple(args.arms), debounce_ms=args.debounce_ms, pace_ms=args.pace_ms,
                   think_ms=args.think_ms, read_s=args.read_s, model_path=args.model_path,
                   product_timeout=args.product_timeout)
    started = time.perf_counter()
    doc: dict[str, Any] = {
        "schema": "slm-lsp-bench/1",
        "command": command,
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "commit": bench_machine.commit(PROJECT),
        "machine": bench_machine.machine(),
        "model": bench_machine.model_facts(ModelSettings().name, args.model_path or ""),
        "options": {"targets": opts.targets, "target_set": opts.target_set,
                    "typing": opts.typing, "seed": opts.seed,
                    "arms": list(opts.arms), "debounce_ms": opts.debounce_ms,
                    "pace_ms": opts.pace_ms, "think_ms": opts.think_ms, "read_s": opts.read_s,
                    "product_timeout": opts.product_timeout},
        "settings": {name: {"sent": arm_settings(ARMS[name], opts.model_path, opts.product_timeout),
                            "effective": effective_settings(arm_settings(
                                ARMS[name], opts.model_path, opts.product_timeout))}
                     for name in opts.arms},
        "repos": {},
    }
    raws = []
    for repo in repos:
        raw = asyncio.run(run_repo(repo, opts))
        raws.append(raw)
        doc["repos"][repo.name] = {
            "repo": raw["repo"],
            "summary": summary.summarize_repo(raw, opts.seed),
            "servers": raw["servers"],
            "raw": {k: raw[k] for k in ("targets", "typing_targets", "tasks", "typing")},
        }
        _finish(doc, raws, opts.seed, started)
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {output}", file=sys.stderr)
    return doc


def _finish(doc: dict[str, Any], raws: list[dict[str, Any]], seed: int, started: float) -> None:
    """Totals over the repositories done so far, load average and duration."""
    from . import machine as bench_machine
    from . import summary

    total = summary.summarize_total(raws, seed)
    doc["total"] = total
    doc["arms"] = total["arms"]
    doc["retrieval_vs_no_retrieval"] = total["retrieval_vs_no_retrieval"]
    doc["latency"] = total["latency"]
    doc["latency_by_arm"] = total["latency_by_arm"]
    doc["machine"]["load_end"] = bench_machine.load_average()
    doc["seconds"] = round(time.perf_counter() - started, 1)
