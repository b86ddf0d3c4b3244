"""Completion benchmark, results part: summaries from raw records, and the Markdown report.

Everything here is computed from the raw records a run stores in its JSON
(every task's suggestion and score, every typing sample), so a report can be
re-rendered, and totals pooled over repositories, without running anything.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from .machine import is_busy
from .summary import FAST_MS, rate
from .targets import percentile

SMALL_RUN = 100
"""PROTOCOL.md asks for at least this many targets per repository."""


# ----- Markdown ------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _sec(value: float | None) -> str:
    return "n/a" if value is None else f"{value / 1000:.2f}"


def _dur(ms: float | None) -> str:
    """Milliseconds as `850 ms` or `12.3 s`."""
    if ms is None:
        return "n/a"
    if ms == float("inf"):
        return "never"
    return f"{ms:.0f} ms" if ms < 1000 else f"{ms / 1000:.1f} s"


def _pair(a: float | None, b: float | None) -> str:
    return f"{_dur(a)} / {_dur(b)}"


def outside_split(tasks: Sequence[dict[str, Any]], arm: str) -> dict[str, Any] | None:
    """Exact match of ``arm`` on the tasks that need a name from another file and on the
    rest (see `targets.outside_names`); None if the tasks were not annotated."""
    rows = [t for t in tasks if arm in t.get("arms", {})]
    if not rows or any("outside_names" not in t for t in rows):
        return None
    need = [t["arms"][arm]["exact"] for t in rows if t["outside_names"]]
    rest = [t["arms"][arm]["exact"] for t in rows if not t["outside_names"]]
    return {"n": len(rows), "outside_n": len(need), "outside_exact": rate(need),
            "rest_n": len(rest), "rest_exact": rate(rest)}


def retrieval_ceiling(tasks: Sequence[dict[str, Any]], base: str = "no_retrieval") -> dict[
        str, Any] | None:
    """The most repository context could give: the exact-match rate of ``base`` if every
    task that needs another file became exact and nothing else changed, and its ratio
    to ``base``'s own rate. None without annotated tasks or exact answers."""
    split = outside_split(tasks, base)
    if split is None or not split["n"]:
        return None
    rest, need = split["rest_exact"] or 0.0, split["outside_n"]
    now = (rest * split["rest_n"] + (split["outside_exact"] or 0.0) * need) / split["n"]
    best = (rest * split["rest_n"] + need) / split["n"]
    return {"exact": now, "ceiling": best, "ratio": best / now if now else None}


def _versus_section(repos: dict[str, Any], names: list[str], total: dict[str, Any] | None,
                    base: str = "no_retrieval") -> list[str]:
    """Every extra arm (the prompt-budget curve, say) minus ``base``, on identical targets."""
    key = f"vs_{base}"
    sections = [(n, repos[n]["summary"]) for n in names] + (
        [("**total**", total)] if total and len(names) > 1 else [])
    arms = sorted({arm for _, section in sections for arm in section.get(key, {})})
    if not arms:
        return []
    lines = ["", f"### Each arm minus {base}", "",
             "Differences of exact match and of edit similarity on identical targets, paired "
             "bootstrap 95% intervals as above; context tokens: the mean size of the repository "
             "context the server put in its prompts (one per band).", "",
             "| repo | arm | targets | exact match | 95% interval | edit similarity | 95% interval "
             "| context tokens |", "| --- | --- | ---: | ---: | --- | ---: | --- | ---: |"]
    for name, section in sections:
        for arm in arms:
            b = section.get(key, {}).get(arm)
            if not b or b.get("diff") is None:
                continue
            es = b.get("similarity") or {}
            es_text = ("n/a | n/a" if es.get("diff") is None else
                       f"{100 * es['diff']:+.1f} pts | [{100 * es['low']:+.1f}, {100 * es['high']:+.1f}] pts")
            tokens = section["arms"].get(arm, {}).get("context_tokens_mean")
            lines.append(f"| {name} | {arm} | {b['n_units']} | {100 * b['diff']:+.1f} pts | "
                         f"[{100 * b['low']:+.1f}, {100 * b['high']:+.1f}] pts | {es_text} | "
                         f"{'-' if tokens is None else f'{tokens:.0f}'} |")
    return lines


def _router_section(repos: dict[str, Any], names: list[str], total: dict[str, Any] | None
                    ) -> list[str]:
    """The routing curve (small and large arms on the same tasks), pooled when there are several
    repositories."""
    section = total if total and len(names) > 1 else repos[names[0]]["summary"] if names else {}
    curve = section.get("router_curve") if section else None
    if not curve:
        return []
    lines = ["", "### Routing curve: the small model, the large one when unsure", "",
             "Computed from the `small` and `large` arms' answers to the same tasks: a task whose "
             "small-model answer has a mean token probability (exp of the mean log-probability "
             "of its tokens) under the threshold takes the large arm's answer, and costs both "
             "requests' time. 0 is the small arm alone; 1 sends (nearly) everything to the "
             "large model after the small one.", "",
             "| below | tasks | escalated | exact match | edit similarity | request mean s "
             "| p50 s | p95 s |", "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in curve:
        lines.append(f"| {row['below']:.1f} | {row['n']} | {_pct(row['escalated'])} | "
                     f"{_pct(row['exact_match'])} | {_pct(row['edit_similarity'])} | "
                     f"{_sec(row['ms_mean'])} | {_sec(row['ms_p50'])} | {_sec(row['ms_p95'])} |")
    return lines


def _outside_section(repos: dict[str, Any], names: list[str]) -> list[str]:
    sections = [(n, list(repos[n].get("raw", {}).get("tasks", {}).values())) for n in names]
    if len(sections) > 1:
        sections.append(("**total**", [t for _, tasks in sections for t in tasks]))
    rows = []
    for name, tasks in sections:
        arms = dict.fromkeys(arm for t in tasks for arm in t.get("arms", {}))
        for arm in arms:
            split = outside_split(tasks, arm)
            if split is None:
                return []
            rows.append(f"| {name} | {arm} | {split['outside_n']}/{split['n']} | "
                        f"{_pct(split['outside_exact'])} | {split['rest_n']} | "
                        f"{_pct(split['rest_exact'])} |")
    if not rows:
        return []
    return ["", "### Where repository context can help", "",
            "A task *needs another file* when its answer uses a name (an identifier-shaped "
            "word, also inside strings) that is not a keyword or builtin, does not occur in "
            "the text of its own file that the default prompt holds (1,536 tokens before "
            "the cursor, 256 after the line, counted at 4.4 "
            "characters per token), and occurs in another file of the repository. Retrieved "
            "chunks never come from the target file, so only these tasks can gain from them.",
            "", "| repo | arm | tasks needing another file | exact match there | other tasks "
            "| exact match there |", "| --- | --- | ---: | ---: | ---: | ---: |", *rows,
            *_ceiling_line(sections[-1][1])]


def _ceiling_line(tasks: Sequence[dict[str, Any]]) -> list[str]:
    ceiling = retrieval_ceiling(tasks)
    if ceiling is None or ceiling["ratio"] is None:
        return []
    return ["", f"Ceiling: if repository context made every task that needs another file "
            f"exact and changed nothing else, exact match would go from "
            f"{_pct(ceiling['exact'])} (no_retrieval) to {_pct(ceiling['ceiling'])}, "
            f"{ceiling['ratio']:.2f} times as much."]


def render(doc: dict[str, Any]) -> str:
    """BENCHMARKS.md from a results document (as written by `slm-lsp bench`)."""
    repos: dict[str, Any] = doc["repos"]
    options = doc.get("options", {})
    lines = ["# Completion benchmark", "",
             "Written by `slm-lsp bench` from its results file; do not edit by hand. The real",
             "server (`slm-lsp serve`) is driven through a real LSP client on real repositories",
             "(method: PROTOCOL.md, summarized at the end).", ""]
    warnings = _warnings(doc)
    if warnings:
        lines += [f"> **{w}**" + ("  " if i < len(warnings) - 1 else "")
                  for i, w in enumerate(warnings)] + [""]
    names = list(repos)
    total = doc.get("total")
    lines += ["## Quality", "",
              "Exact match: the suggestion's first line equals the rest of the line (stripped). "
              "Edit similarity: 1 - normalized Levenshtein distance of the first lines. "
              "Each target is asked twice: cursor after the indentation (whole line) and at a "
              "random column inside the line (rest of line)."
              + (" **Cross-file target set**: lines whose answer uses a name from another file "
                 "of the repository (through an import) or defined far away in the same file, "
                 "which the prompt does not show; the rest-of-line cursor sits right before that "
                 "name (`targets.select_crossfile_targets`)."
                 if options.get("target_set") == "crossfile" else ""), "",
              "| repo | arm | tasks | exact match | edit similarity | whole line | rest of line "
              "| errors | request p50 s |",
              "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, section in [(n, repos[n]["summary"]) for n in names] + (
            [("**total**", total)] if total and len(names) > 1 else []):
        for arm, s in section["arms"].items():
            if "pending" in s:
                lines.append(f"| {name} | {arm} | - | pending: {s['pending']} | | | | | |")
                continue
            by = s.get("by_task", {})
            lines.append(
                f"| {name} | {arm} | {s.get('n', 0)} | {_pct(s.get('exact_match'))} | "
                f"{_pct(s.get('edit_similarity'))} | "
                f"{_pct(by.get('whole_line', {}).get('exact_match'))} | "
                f"{_pct(by.get('rest_of_line', {}).get('exact_match'))} | "
                f"{s.get('errors', 0)} | {_sec(s.get('request_ms_p50'))} |")
    lines += ["", "### Retrieval minus no retrieval", "",
              "Difference of exact-match rates on identical targets, with a paired bootstrap "
              "95% interval (targets resampled with both their tasks; "
              f"{_boot_params(doc)}).", "",
              "| repo | targets | difference | 95% interval |", "| --- | ---: | ---: | --- |"]
    for name, section in [(n, repos[n]["summary"]) for n in names] + (
            [("**total**", total)] if total and len(names) > 1 else []):
        b = section["retrieval_vs_no_retrieval"]
        if b.get("diff") is None:
            lines.append(f"| {name} | {b.get('n_units', 0)} | n/a | n/a |")
        else:
            lines.append(f"| {name} | {b['n_units']} | {100 * b['diff']:+.1f} pts | "
                         f"[{100 * b['low']:+.1f}, {100 * b['high']:+.1f}] pts |")
    lines += _versus_section(repos, names, total)
    lines += _versus_section(repos, names, total, "today")
    lines += _router_section(repos, names, total)
    lines += _outside_section(repos, names)
    lines += ["", "## Latency: typing replay", "",
              "Lines typed one character at a time with incremental `didChange`, an inline "
              f"completion request {options.get('debounce_ms', 50)} ms after each keystroke; "
              + ("the next keystroke waits for the answer. "
                 if not options.get("pace_ms") else
                 f"one keystroke every {options['pace_ms']} ms, stale requests cancelled. ")
              + (f"Before each line the cursor was reported there (`slm/cursor`) and the "
                 f"replay paused {options['think_ms']} ms. " if options.get("think_ms") else "")
              + "p50 / p95. *First on file*: the first request in a newly opened "
              "file; *first at line*: the first request at a new line of a file already open "
              "(the file's lines to type are empty from the moment it is opened, so the server "
              "never sees one before it is typed). *Fast*: typing answers under "
              f"{FAST_MS:.0f} ms (served without the model). Chars saved: characters the user would not "
              "have typed by accepting the first suggestion that equals the rest of the line.",
              "", "| repo | arm | lines | first on file | first at line | first (both) | typing "
              "| fast | chars saved |", "| --- | --- | ---: | --- | --- | --- | --- | ---: | ---: |"]
    for name, section in [(n, repos[n]["summary"]) for n in names] + (
            [("**total**", total)] if total and len(names) > 1 else []):
        for arm, lat in section["latency_by_arm"].items():
            saved = (f"{lat['chars_saved']}/{lat['chars_total']} "
                     f"({_pct(lat['chars_saved_fraction'])})")
            lines.append(
                f"| {name} | {arm} | {lat['lines']} | "
                f"{_pair(lat['first_file_p50'], lat['first_file_p95'])} | "
                f"{_pair(lat['first_line_p50'], lat['first_line_p95'])} | "
                f"{_pair(lat['first_p50'], lat['first_p95'])} | "
                f"{_pair(lat['typing_p50'], lat['typing_p95'])} | "
                f"{_pct(lat.get('typing_fast_fraction'))} | {saved} |")
    lines += _first_suggestion_section(repos, names, total, options)
    lines += _moves_section(repos, names)
    lines += _first_answers_section(repos, names)
    lines += ["", "## Server process", "",
              "Resident memory (VmRSS) at the end of each arm's last quality session, its peak "
              "(VmHWM), and CPU used while idle (3 s sampled after the last request settled).",
              "", "| repo | arm | RSS MiB | peak RSS MiB | idle CPU | sessions | KV splice "
              "| leak check |", "| --- | --- | ---: | ---: | ---: | ---: | --- | --- |"]
    for name in names:
        for arm, info in repos[name].get("servers", {}).items():
            idle = info.get("idle") or {}
            leak = info.get("leak_check")
            leak_text = "n/a" if not leak else (
                f"ok ({leak['copies']} copies)" if not leak["problems"]
                else f"FAILED ({len(leak['problems'])})")
            lines.append(
                f"| {name} | {arm} | {info.get('rss_mib', 'n/a')} | "
                f"{info.get('peak_rss_mib', 'n/a')} | "
                f"{'n/a' if idle.get('cpu_percent') is None else str(idle['cpu_percent']) + '%'}"
                f" | {len(info.get('sessions', []))} | {info.get('splice', 'n/a')} | "
                f"{leak_text} |")
    lines += _setup(doc) + _method()
    return "\n".join(lines) + "\n"


NEAR_LINES = 20
"""A move to a new line at most this far counts as nearby in the report."""


def first_line_moves(typing: dict[str, Any]) -> list[dict[str, Any]]:
    """Each first request at a new line of an open file, with how far the cursor moved.

    ``typing`` is one arm's raw typing replay; the previous typed line of the same
    file is where the cursor came from.
    """
    firsts = {s["target"]: s for s in typing.get("samples", []) if s.get("k") == 0}
    moves: list[dict[str, Any]] = []
    last: dict[str, int] = {}
    for line in typing.get("lines", []):
        path, _, row_text = line["target"].rpartition(":")
        row = int(row_text)
        sample = firsts.get(line["target"])
        if line["first"] == "first_line" and path in last and sample is not None:
            moves.append({"path": path, "from": last[path], "to": row,
                          "lines": abs(row - last[path]),
                          "ms": sample["ms"] if sample["status"] == "ok" else None})
        last[path] = row
    return moves


def _moves_section(repos: dict[str, Any], names: Sequence[str]) -> list[str]:
    """The first-at-line requests one by one, with the distance the cursor moved."""
    rows: list[str] = []
    near: dict[str, list[float]] = {}
    for name in names:
        for arm, typing in repos[name].get("raw", {}).get("typing", {}).items():
            for move in first_line_moves(typing):
                rows.append(f"| {name} | {arm} | {move['path']} | {move['from'] + 1} -> "
                            f"{move['to'] + 1} | {move['lines']} | {_dur(move['ms'])} |")
                if move["ms"] is not None and move["lines"] <= NEAR_LINES:
                    near.setdefault(arm, []).append(move["ms"])
    if not rows:
        return []
    summary = "; ".join(f"{arm} {_dur(percentile(ms, 0.5))} (n={len(ms)})"
                        for arm, ms in near.items()) or "none in this run"
    return ["", "### First request at a new line, by distance", "",
            "The cursor came from the previous typed line of the same file (1-based "
            "lines). The cost grows with the distance: text the cursor moved over is "
            "evaluated again, the rest of the cached prompt is reused. p50 of moves of at "
            f"most {NEAR_LINES} lines: {summary}.", "",
            "| repo | arm | file | lines | moved | first request |",
            "| --- | --- | --- | --- | ---: | ---: |", *rows]


def _first_suggestion_section(repos: dict[str, Any], names: Sequence[str],
                              total: dict[str, Any] | None, options: dict[str, Any]) -> list[str]:
    """Time to the first non-empty suggestion at a place, and the empty first answers."""
    sections = [(n, repos[n]["summary"]) for n in names] + (
        [("**total**", total)] if total and len(names) > 1 else [])
    rows = []
    for name, section in sections:
        for arm, lat in section["latency_by_arm"].items():
            if lat.get("first_suggestion_file_p50") is None and lat.get("first_suggestion_line_p50") is None:
                continue
            rows.append(f"| {name} | {arm} | {lat['lines']} | "
                        f"{_pair(lat['first_suggestion_file_p50'], lat['first_suggestion_file_p95'])} | "
                        f"{_pair(lat['first_suggestion_line_p50'], lat['first_suggestion_line_p95'])} | "
                        f"{lat.get('first_empty', 0)} |")
    if not rows:
        return []
    timeout = ("with the product's request timeout (`slm.completion.timeoutMs`): an empty "
               "answer after it is a miss and the clock runs on until a keystroke at the line "
               "gets a suggestion" if options.get("product_timeout") else
               "every answer waited for (no request timeout)")
    return ["", "### Time to the first suggestion at a place", "",
            f"From the first request at a line to the first non-empty answer there, {timeout}; "
            "a line that never got one counts as infinite. p50 / p95.", "",
            "| repo | arm | lines | newly opened file | new line of an open file | empty first answers |",
            "| --- | --- | ---: | --- | --- | ---: |", *rows]


def first_answers(raw: dict[str, Any], arm: str) -> tuple[int, int, int]:
    """(typed lines whose first request was answered and that the quality run scored,
    how many of those first answers were exact, how many of the quality run's
    whole-line answers for the same targets were exact)."""
    tasks = raw.get("tasks", {})
    n = typed = cold = 0
    for line in raw.get("typing", {}).get(arm, {}).get("lines", []):
        record = tasks.get(f"{line['target']}#whole_line", {}).get("arms", {}).get(arm)
        if line.get("first_exact") is None or record is None:
            continue
        n += 1
        typed += bool(line["first_exact"])
        cold += bool(record["exact"])
    return n, typed, cold


def _first_answers_section(repos: dict[str, Any], names: Sequence[str]) -> list[str]:
    """Exact match of the typing replay's first answers against the quality run's."""
    rows: list[str] = []
    totals: dict[str, list[int]] = {}
    for name in names:
        raw = repos[name].get("raw", {})
        for arm in raw.get("typing", {}):
            n, typed, cold = first_answers(raw, arm)
            if n:
                rows.append(f"| {name} | {arm} | {n} | {typed} | {cold} |")
                total = totals.setdefault(arm, [0, 0, 0])
                total[0], total[1], total[2] = total[0] + n, total[1] + typed, total[2] + cold
    if not rows:
        return []
    rows += [f"| **total** | {arm} | {n} | {typed} | {cold} |"
             for arm, (n, typed, cold) in totals.items()] if len(names) > 1 else []
    return ["", "### First answers at a typed line", "",
            "The first suggestion at each typed line (cursor after the indentation, the "
            "line emptied) is the quality run's whole-line task on the same target (in the "
            "replay the file's lines still to type are empty as well). Served "
            "in the replay from whatever the server had prepared (saved or warmed model "
            "states reused in part, see docs/latency.md), in the quality run from an empty "
            "cache. Exact answers of each:", "",
            "| repo | arm | lines | exact in the replay | exact in the quality run |",
            "| --- | --- | ---: | ---: | ---: |", *rows]


def _boot_params(doc: dict[str, Any]) -> str:
    total = doc.get("total") or next(iter(doc["repos"].values()))["summary"]
    b = total["retrieval_vs_no_retrieval"]
    return f"{b.get('resamples')} resamples, seed {b.get('seed')}"


def _warnings(doc: dict[str, Any]) -> list[str]:
    """Labels the reader must see before the numbers."""
    found = []
    targets = doc.get("options", {}).get("targets", 0)
    if targets < SMALL_RUN:
        found.append(f"Small run: {targets} targets per repository (the protocol asks for at "
                     f"least {SMALL_RUN}); the numbers are indicative only.")
    if is_busy(doc.get("machine", {})):
        load = doc["machine"]["load_start"]
        found.append(f"Busy machine: load average {load[0]} at the start (other work was "
                     "running); latencies are slower than on a quiet machine.")
    for name, repo in doc["repos"].items():
        for arm, info in repo.get("servers", {}).items():
            leak = info.get("leak_check")
            if leak and leak["problems"]:
                found.append(f"Leak check failed for {name} [{arm}]: {leak['problems'][0]}")
            if info.get("failed"):
                found.append(f"{name} [{arm}] failed: {info['failed']}")
    pending = sorted({arm for repo in doc["repos"].values()
                      for arm, info in repo["summary"]["arms"].items() if "pending" in info})
    if pending:
        found.append(f"Pending arms (not run): {', '.join(pending)}.")
    return found


def _setup(doc: dict[str, Any]) -> list[str]:
    m = doc.get("machine", {})
    model = doc.get("model", {})
    c = doc.get("commit", {})
    lines = ["", "## Setup", "",
             f"- Machine: {m.get('cpu_model')}, {m.get('cores')} cores "
             f"({m.get('usable_cores')} usable), {m.get('memory_gib')} GiB; {m.get('os')}, "
             f"Python {m.get('python')}",
             f"- Load average (1, 5, 15 min): {_load(m.get('load_start'))} at the start, "
             f"{_load(m.get('load_end'))} at the end"
             + (" (busy: other work was running)" if is_busy(m) else ""),
             f"- Model: {model.get('name')} (`{model.get('file')}`, sha256 "
             f"{model.get('sha256_prefix')}...)",
             f"- Commit: {c.get('hash')}" + (" with uncommitted changes" if c.get("dirty") else ""),
             f"- Run: {doc.get('timestamp')}, {doc.get('seconds', 0) / 60:.0f} min; "
             f"seed {doc.get('options', {}).get('seed')}",
             "", "Settings sent to the servers (`slm` section; everything else default):", ""]
    for arm, s in doc.get("settings", {}).items():
        lines.append(f"- `{arm}`: `{json.dumps(s.get('sent'), sort_keys=True)}`")
    lines += ["", "## Command", "", "```", str(doc.get("command")), "```"]
    return lines


def _load(load: list[float] | None) -> str:
    return "n/a" if not load else " ".join(str(x) for x in load)


def _method() -> list[str]:
    return ["", "## Method", "",
            "- Targets: lines inside function bodies (tree-sitter), not blank, not a comment or "
            "docstring, at least 10 characters after the indentation; a seeded shuffle of all "
            "such lines, the same for every arm.",
            "- Each task's document is opened with the target line cut at the cursor (the "
            "rest of the file intact), completed once, and closed.",
            "- `retrieval`: for each target file a copy of the repository without that file is "
            "the workspace; its index is built by the server (seeded from the full index, the "
            "missing file dropped by the build). Every saved copy index is checked for the "
            "target file afterwards.",
            "- `psm_plain`: the plain prefix/suffix/middle layout without our latency tricks "
            "(KV splice and token healing off; index off).",
            "- Every arm runs with the soft completion timeout raised, so slow cold requests "
            "are measured instead of answered empty.",
            "- Typing replay runs in fresh server processes, so the quality tasks' cached "
            "answers cannot serve it."]
