"""Pair one arm across two results files of `slm-lsp bench` (two models, two commits).

One bench run compares arms of one server build and one model file. A question such
as "what does a locally converted copy of the model cost in exact match?" needs two
runs on identical targets (same dev set, seed and target count; a run with fewer
targets pairs with the first targets of a longer one, because target selection is
prefix-stable). This command matches their tasks by target and task kind and writes
a Markdown table: the exact match and edit similarity of each side, and the paired
bootstrap interval of the difference (the same resampling as the bench report).

    python -m slm_lsp.bench.pair BASE.json OTHER.json [--arm defaults] [--other-arm NAME]
        [--label-base Q4_K_M --label-other Q4_0] --out bench/FILE.md
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

from .summary import paired_units, rate
from .targets import bootstrap_diff


def _tasks(doc: dict[str, Any], repo: str, arm: str, label: str) -> dict[str, dict[str, Any]]:
    """The tasks of ``repo`` that ``arm`` answered, keyed by target and task, the answer under
    ``label``."""
    raw = doc["repos"].get(repo, {}).get("raw", {})
    out = {}
    for key, task in raw.get("tasks", {}).items():
        answer = task.get("arms", {}).get(arm)
        if answer is not None:
            out[key] = {"target": task["target"], "task": task["task"], "arms": {label: answer}}
    return out


def pair(base: dict[str, Any], other: dict[str, Any], arm: str, other_arm: str,
         labels: tuple[str, str], seed: int = 0) -> dict[str, Any]:
    """Per repository (and in total): both sides' rates on the tasks both answered and the
    paired intervals of other minus base."""
    a, b = labels
    rows: dict[str, Any] = {}
    pooled: list[dict[str, Any]] = []
    for repo in [r for r in base["repos"] if r in other["repos"]]:
        left = _tasks(base, repo, arm, a)
        right = _tasks(other, repo, other_arm, b)
        both = [{**left[k], "target": f"{repo}:{left[k]['target']}",
                 "arms": {**left[k]["arms"], **right[k]["arms"]}} for k in left if k in right]
        if both:
            rows[repo] = _side_by_side(both, a, b, seed)
            pooled += both
    if len(rows) > 1:
        rows["**total**"] = _side_by_side(pooled, a, b, seed)
    return rows


def _side_by_side(tasks: list[dict[str, Any]], a: str, b: str, seed: int) -> dict[str, Any]:
    return {
        "tasks": len(tasks),
        "exact": (rate(t["arms"][a]["exact"] for t in tasks),
                  rate(t["arms"][b]["exact"] for t in tasks)),
        "similarity": (rate(t["arms"][a]["similarity"] for t in tasks),
                       rate(t["arms"][b]["similarity"] for t in tasks)),
        "empty": (sum(1 for t in tasks if not t["arms"][a].get("text")),
                  sum(1 for t in tasks if not t["arms"][b].get("text"))),
        "exact_diff": bootstrap_diff(paired_units(tasks, a, b), seed=seed),
        "similarity_diff": bootstrap_diff(paired_units(tasks, a, b, "similarity"), seed=seed),
    }


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _diff(d: dict[str, Any]) -> str:
    if d.get("diff") is None:
        return "n/a | n/a"
    return (f"{100 * d['diff']:+.1f} pts | [{100 * d['low']:+.1f}, {100 * d['high']:+.1f}] pts")


def render(rows: dict[str, Any], labels: tuple[str, str], sources: tuple[str, str],
           command: str) -> str:
    a, b = labels
    lines = [f"# {b} against {a} on identical targets", "",
             "Written by `python -m slm_lsp.bench.pair` from two results files of `slm-lsp bench`; "
             "do not edit by hand. Tasks are paired by target line and task kind; intervals are "
             "paired bootstrap 95% intervals over targets (2000 resamples, seed 0).", "",
             f"- {a}: `{sources[0]}`", f"- {b}: `{sources[1]}`", "",
             f"| repo | tasks | exact match {a} | exact match {b} | difference | 95% interval "
             f"| edit similarity {a} | {b} | difference | 95% interval | empty answers {a} / {b} |",
             "| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | --- | ---: |"]
    for repo, r in rows.items():
        lines.append(
            f"| {repo} | {r['tasks']} | {_pct(r['exact'][0])} | {_pct(r['exact'][1])} | "
            f"{_diff(r['exact_diff'])} | {_pct(r['similarity'][0])} | {_pct(r['similarity'][1])} | "
            f"{_diff(r['similarity_diff'])} | {r['empty'][0]} / {r['empty'][1]} |")
    lines += ["", "```", command, "```", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m slm_lsp.bench.pair", description=__doc__.split("\n")[0])
    p.add_argument("base", type=Path)
    p.add_argument("other", type=Path)
    p.add_argument("--arm", default="defaults", help="the arm of BASE (and of OTHER unless given)")
    p.add_argument("--other-arm", help="the arm of OTHER (default: --arm)")
    p.add_argument("--label-base", default="base")
    p.add_argument("--label-other", default="other")
    p.add_argument("--out", type=Path, required=True, help="Markdown file to write")
    args = p.parse_args(argv)
    try:
        docs = [json.loads(path.read_text(encoding="utf-8")) for path in (args.base, args.other)]
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    labels = (args.label_base, args.label_other)
    rows = pair(docs[0], docs[1], args.arm, args.other_arm or args.arm, labels)
    if not rows:
        print("error: the two files share no answered task of those arms", file=sys.stderr)
        return 1
    command = "python -m slm_lsp.bench.pair " + shlex.join(sys.argv[1:] if argv is None else argv)
    args.out.write_text(render(rows, labels, (str(args.base), str(args.other)), command),
                        encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
