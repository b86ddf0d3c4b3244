"""The completion benchmark without a model: targets, scores, statistics, editor
behaviour towards the server, repository copies and the report."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from slm_lsp.bench import cli as bench
from slm_lsp.bench import report as bench_report
from slm_lsp.bench import summary as bench_summary
from slm_lsp.bench.arms import ARMS, Arm, pending_reason
from slm_lsp.bench.client import Answer, BenchServer, Pending
from slm_lsp.bench.copies import copy_without
from slm_lsp.bench.session import Options, replay_line, run_tasks
from slm_lsp.bench.targets import (
    TASKS,
    Target,
    bootstrap_diff,
    candidate_lines,
    chars_saved,
    edit_similarity,
    exact_match,
    file_names,
    leaks,
    levenshtein,
    make_target,
    masked_document,
    masked_lines,
    outside_names,
    percentile,
    select_targets,
    typing_subset,
    utf16_column,
)

SOURCE = '''\
"""Module docstring that is long enough."""
import os
CONSTANT_VALUE = compute_constant(1, 2)


def first(alpha, beta):
    """A docstring line that is long.

    Second docstring line, also long enough.
    """
    # a whole-line comment that is long
    total = alpha + beta  # trailing comment
    x = 1
    message = """multi-line string start
    inside the string, not code at all
    """

    return total * 2 + len(message)


class Thing:
    label_attribute = "class body, not a function"

    def method(self, value):
        result = self.helper(value)
        def inner(item):
            return item * 1000
        return [inner(v) for v in result]

    def short(self): return self.label_attribute
'''
# 0-based rows of SOURCE that must qualify: total =, message = (first row of the
# string), return total, result =, def inner (inside method's body), return item,
# return [inner...
EXPECTED = [11, 13, 17, 24, 25, 26, 27]


def test_candidate_lines_are_function_body_code_only():
    rows = candidate_lines(SOURCE, "python")
    assert rows == EXPECTED
    lines = SOURCE.split("\n")
    for row in rows:
        assert len(lines[row].strip()) >= 10


def test_candidate_lines_for_unknown_language_is_empty():
    assert candidate_lines(SOURCE, "cobol") == []


def _files() -> dict[str, str]:
    return {"pkg/a.py": SOURCE, "pkg/b.py": SOURCE.replace("alpha", "gamma"),
            "README.md": "not code\n"}


def test_select_targets_is_deterministic_and_prefix_stable():
    one = select_targets(_files(), 6, seed=3)
    two = select_targets(_files(), 6, seed=3)
    assert one == two and len(one) == 6
    assert one == sorted(one, key=lambda t: (t.path, t.line))
    smaller = select_targets(_files(), 3, seed=3)
    assert set(smaller) <= set(one)
    other = select_targets(_files(), 6, seed=4)
    assert other != one
    everything = select_targets(_files(), 1000, seed=3)
    assert len(everything) == 2 * len(EXPECTED)
    assert all(t.path.endswith(".py") for t in everything)


def test_rest_of_line_column_is_strictly_inside_the_line():
    for target in select_targets(_files(), 1000, seed=1):
        assert target.indent < target.column < len(target.text.rstrip())
        assert target.truth("whole_line") == target.code
        assert target.code.endswith(target.truth("rest_of_line"))
        assert target.truth("rest_of_line")


def test_column_does_not_depend_on_how_many_targets_are_drawn():
    t = make_target("p.py", 4, "    value = compute(a, b)", "python", seed=9)
    assert t == make_target("p.py", 4, "    value = compute(a, b)", "python", seed=9)


def test_typing_subset_takes_two_lines_per_file():
    targets = select_targets(_files(), 1000, seed=0)
    subset = typing_subset(targets, 3)
    assert len(subset) == 3
    per_file: dict[str, int] = {}
    for t in subset:
        per_file[t.path] = per_file.get(t.path, 0) + 1
    assert max(per_file.values()) <= 2 and len(per_file) == 2


def test_levenshtein_and_edit_similarity():
    assert levenshtein("kitten", "sitting") == 3
    assert levenshtein("", "abc") == 3 and levenshtein("abc", "") == 3
    assert levenshtein("flaw", "lawn") == levenshtein("lawn", "flaw") == 2
    assert edit_similarity("x = 1", "x = 1") == 1.0
    assert edit_similarity("", "") == 1.0
    assert edit_similarity("abcd", "") == 0.0
    assert edit_similarity("  return a  \nmore lines", "return b") == pytest.approx(1 - 1 / 8)


def test_exact_match_compares_stripped_first_line():
    assert exact_match(" return x \n    more()", "return x")
    assert not exact_match("return y", "return x")
    assert exact_match("", "")


def test_chars_saved_counts_the_first_acceptable_suggestion():
    truth = "return value"
    assert chars_saved(truth, ["return other", None, "turn value\nx"]) == len("turn value")
    assert chars_saved(truth, ["return value"] + [None] * 11) == len(truth)
    assert chars_saved(truth, [None] * 12) == 0
    assert chars_saved(truth, ["", ""]) == 0


def test_percentile_interpolates():
    assert percentile([], 0.5) is None
    assert percentile([3.0], 0.95) == 3.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5


def test_bootstrap_interval_shape_and_determinism():
    pairs = [(0.0, 1.0)] * 10 + [(1.0, 1.0)] * 10 + [(1.0, 0.0)] * 5
    one = bootstrap_diff(pairs, seed=7, resamples=500)
    assert set(one) >= {"diff", "low", "high", "n_units", "resamples", "seed", "level"}
    assert one["n_units"] == 25 and one["diff"] == pytest.approx(5 / 25)
    assert one["low"] <= one["diff"] <= one["high"]
    assert one == bootstrap_diff(pairs, seed=7, resamples=500)
    same = bootstrap_diff([(0.0, 1.0)] * 8, seed=1, resamples=100)
    assert same["low"] == same["high"] == same["diff"] == 1.0
    empty = bootstrap_diff([], seed=1)
    assert empty["diff"] is None and empty["low"] is None


# ----- what reaches the server ---------------------------------------------------------


def _target(rel: str = "pkg/a.py", row: int = 11) -> Target:
    return make_target(rel, row, SOURCE.split("\n")[row], "python", seed=0)


def test_masked_document_cuts_only_the_target_line_at_the_cursor():
    target = _target()
    for task in TASKS:
        col = target.cursor(task)
        doc = masked_document(SOURCE, target, col)
        lines, original = doc.split("\n"), SOURCE.split("\n")
        assert len(lines) == len(original)
        assert lines[target.line] == target.text[:col]
        assert target.truth(task) not in lines[target.line]
        assert [x for i, x in enumerate(lines) if i != target.line] == \
               [x for i, x in enumerate(original) if i != target.line]
    with pytest.raises(ValueError):
        masked_document(SOURCE.replace("total = alpha", "total = delta"), target, 4)


def test_utf16_columns():
    assert utf16_column("a\U0001F600b", 2) == 3
    assert utf16_column("abc", 2) == 2


def test_leak_detection_by_path():
    target = _target()
    assert leaks(target, ["pkg/b.py", "./pkg/a.py".lstrip("./")])
    assert not leaks(target, ["pkg/b.py", "other/a.py"])


class FakeServer:
    """Records what the benchmark sends, answers requests from a script."""

    def __init__(self, answers: list[str]) -> None:
        self.answers = list(answers)
        self.docs: dict[str, list[str]] = {}
        self.events: list[tuple[str, Any]] = []
        self.cancelled: list[str] = []
        self.log = SimpleNamespace(suggestions=[])
        """What a real server logs of each model answer (path, row, model, logprob, escalated)."""

    def alive(self) -> bool:
        return True

    def open(self, rel: str, text: str, language: str = "python") -> None:
        assert rel not in self.docs, "opened twice without closing"
        self.docs[rel] = text.split("\n")
        self.events.append(("open", text))

    def close(self, rel: str) -> None:
        del self.docs[rel]
        self.events.append(("close", rel))

    def show(self, rel: str, text: str, language: str = "python") -> None:
        self.docs[rel] = text.split("\n")
        self.events.append(("show", text))

    def type_char(self, rel: str, row: int, column: int, char: str) -> None:
        line = self.docs[rel][row]
        assert len(line) == column, "keystrokes go at the end of the typed text"
        self.docs[rel][row] = line + char

    async def complete(self, rel: str, row: int, column: int) -> Answer:
        self.events.append(("complete", (row, column, "\n".join(self.docs[rel]))))
        self.log.suggestions.append((rel, row, "fake.gguf", -0.25 * len(self.answers), False))
        return Answer(self.answers.pop(0), 5.0)

    def request(self, rel: str, row: int, column: int) -> Pending:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.set_result(self.answers.pop(0) if self.answers else "")
        self.events.append(("request", (row, column, self.docs[rel][row])))
        return FakePending("id", f"{rel}:{row + 1}", future, 0.0)

    def cancel(self, msg_id: str) -> None:
        self.cancelled.append(msg_id)

    def cursor(self, rel: str, row: int, column: int) -> None:
        self.events.append(("cursor", (row, column)))


class FakePending(Pending):
    def answer(self) -> Answer:
        return Answer(self.future.result(), 3.0)


def test_the_replay_shows_every_line_still_to_type_empty():
    first = _target()
    lines = SOURCE.split("\n")
    row = next(i for i, x in enumerate(lines) if i > first.line and len(x.strip()) >= 10)
    second = _target(row=row)
    shown = masked_lines(SOURCE, [first, second]).split("\n")
    assert shown[first.line] == first.text[:first.indent]
    assert shown[second.line] == second.text[:second.indent]
    assert [x for i, x in enumerate(shown) if i not in (first.line, second.line)] == \
        [x for i, x in enumerate(lines) if i not in (first.line, second.line)]
    assert masked_lines(SOURCE, []) == SOURCE
    with pytest.raises(ValueError):
        masked_lines(masked_lines(SOURCE, [second]), [second])  # the line is no longer there


async def test_each_task_sends_the_masked_document_then_closes_it():
    target = _target()
    server = FakeServer(["return nothing", target.truth("whole_line")])
    records: dict[tuple[str, str], dict[str, Any]] = {}
    await run_tasks(server, [target], {target.path: SOURCE}, ARMS["no_retrieval"],  # type: ignore[arg-type]
                    records, lambda *a: None)
    kinds = [e[0] for e in server.events]
    assert kinds == ["open", "complete", "close", "open", "complete", "close"]
    assert not server.docs
    for task, (_, (row, col, text)) in zip(TASKS, [e for e in server.events
                                                   if e[0] == "complete"], strict=True):
        assert (row, col) == (target.line, target.cursor(task))
        assert text == masked_document(SOURCE, target, target.cursor(task))
    assert records[(target.key, "whole_line")]["exact"]
    assert not records[(target.key, "rest_of_line")]["exact"]
    # each record carries what the server logged of the model answer to that request
    assert [records[(target.key, task)]["mean_logprob"] for task in TASKS] == [-0.5, -0.25]
    assert records[(target.key, "whole_line")]["model"] == "fake.gguf"


async def test_typing_replay_types_the_line_and_counts_saved_characters():
    target = _target()
    code = target.code
    answers = ["wrong", "wrong", code[2:]] + ["x"] * len(code)
    server = FakeServer(answers)
    samples, line = await replay_line(server, target, masked_lines(SOURCE, [target]), "first_file",  # type: ignore[arg-type]
                                      Options(debounce_ms=0, think_ms=0))
    assert "\n".join(server.docs[target.path]) == SOURCE
    assert len(samples) == len(code)
    assert samples[0]["kind"] == "first_file" and {s["kind"] for s in samples[1:]} == {"typing"}
    assert [e[1][1] for e in server.events if e[0] == "request"] == \
           [target.indent + k for k in range(len(code))]
    waited = line.pop("first_suggestion_ms")
    assert waited is not None and waited >= 0  # "wrong" is not empty: the first answer counts
    assert line == {"target": target.key, "first": "first_file", "chars": len(code),
                    "saved": len(code) - 2, "read_s": 0.0, "first_exact": False,
                    "first_empty": False}  # "wrong"
    server = FakeServer([code] + ["x"] * len(code))
    _, line = await replay_line(server, target, masked_lines(SOURCE, [target]), "first_line",  # type: ignore[arg-type]
                                Options(debounce_ms=0, think_ms=0))
    assert line["first_exact"] is True and line["saved"] == len(code)


async def test_think_time_reports_the_cursor_then_pauses_before_the_first_keystroke():
    target = _target()
    for think_ms in (0, 150):
        server = FakeServer([])
        start = time.monotonic()
        await replay_line(server, target, masked_lines(SOURCE, [target]), "first_line",  # type: ignore[arg-type]
                          Options(debounce_ms=0, think_ms=think_ms))
        kinds = [e[0] for e in server.events]
        if think_ms:
            assert time.monotonic() - start >= 0.15
            assert kinds[:3] == ["show", "cursor", "request"]
            assert server.events[1][1] == (target.line, target.indent)
        else:
            assert "cursor" not in kinds
    doc = _doc(load=0.1, targets=100)
    doc["options"]["think_ms"] = 3000
    assert "the replay paused 3000 ms" in bench_report.render(doc)
    assert "the replay paused" not in bench_report.render(_doc(load=0.1, targets=100))


def test_incremental_edits_reproduce_the_document(tmp_path: Path):
    server = BenchServer(tmp_path, {}, tmp_path / "log")
    sent: list[Any] = []
    server._send = lambda doc, changes: sent.extend(changes)  # type: ignore[method-assign]
    server.client.text_document_did_open = lambda params: None  # type: ignore[method-assign]
    mirror = SOURCE.split("\n")
    server.open("a.py", SOURCE)
    target = _target("a.py", 24)
    for text in (masked_document(SOURCE, target, target.column), SOURCE,
                 masked_document(SOURCE, target, target.indent)):
        sent.clear()
        server.show("a.py", text)
        for change in sent:
            r = change.range
            line = mirror[r.start.line]
            mirror[r.start.line] = line[:r.start.character] + change.text + line[r.end.character:]
        assert "\n".join(mirror) == text == server.docs["a.py"].text
    sent.clear()
    server.type_char("a.py", 24, target.indent, "r")
    assert sent[0].text == "r" and sent[0].range.start.character == target.indent


def test_copy_without_leaves_out_only_the_target_file(tmp_path: Path):
    root = tmp_path / "proj"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "a.py").write_text(SOURCE)
    (root / "pkg" / "b.py").write_text("x = 1\n")
    (root / "top.py").write_text("y = 2\n")
    copy = copy_without(root, "pkg/a.py", tmp_path / "copies")
    assert copy.name == root.name
    assert not (copy / "pkg" / "a.py").exists()
    assert (copy / "pkg" / "b.py").read_text() == "x = 1\n" and (copy / "top.py").exists()
    assert copy_without(root, "pkg/a.py", tmp_path / "copies") == copy
    (copy / "pkg" / "a.py").write_text("leaked")
    with pytest.raises(RuntimeError):
        copy_without(root, "pkg/a.py", tmp_path / "copies")


def test_arms_are_pending_until_the_server_has_their_switches():
    assert pending_reason(Arm("x", "", {}, requires=("slm.completion.maxTokens",))) is None
    reason = pending_reason(Arm("x", "", {}, requires=("slm.completion.noSuchSwitch",)))
    assert reason and "noSuchSwitch" in reason
    assert ARMS["psm_plain"].settings["model"] == {"kvSplice": False, "kvSnapshots": 0}


def test_module_entry_point_maps_devset_word():
    args, prog, shown = bench.parse_module_args(["devset", "--targets", "3"])
    assert args.devset and args.targets == 3 and prog.endswith("devset")
    assert shown == ["--targets", "3"]
    args, _, _ = bench.parse_module_args(["devset", "--devset", "x.toml"])
    assert args.devset == "x.toml"
    args, _, _ = bench.parse_module_args(["some/repo", "--arms", "retrieval"])
    assert args.repo == "some/repo" and args.arms == ["retrieval"] and not args.devset


def test_cli_registers_bench(monkeypatch):
    from slm_lsp.cli import build_parser, main

    seen = {}
    monkeypatch.setattr(bench, "run", lambda args, prog, shown: seen.update(args=args, prog=prog) or 0)
    assert main(["bench", "repo", "--targets", "5", "--typing", "2"]) == 0
    args = seen["args"]
    assert args.targets == 5 and args.typing == 2 and seen["prog"] == "slm-lsp bench"
    assert "bench" in build_parser().format_help()


# ----- report --------------------------------------------------------------------------


def _raw(name: str, hits: dict[str, list[bool]]) -> dict[str, Any]:
    """Raw results of a repository with four targets, exact flags per arm."""
    tasks = {}
    for i in range(4):
        for j, task in enumerate(TASKS):
            key = f"f.py:{i + 1}"
            tasks[f"{key}#{task}"] = {
                "target": key, "task": task, "truth": "x = 1",
                "arms": {arm: {"text": "x = 1" if flags[i] else "y", "ms": 1000.0 + 100 * j,
                               "error": None, "exact": flags[i], "exact_full": flags[i],
                               "similarity": 1.0 if flags[i] else 0.2}
                         for arm, flags in hits.items()}}
    samples = [{"target": "f.py:1", "k": 0, "kind": "first_file", "status": "ok", "ms": 9000.0},
               {"target": "f.py:1", "k": 1, "kind": "typing", "status": "ok", "ms": 200.0},
               {"target": "f.py:2", "k": 0, "kind": "first_line", "status": "ok", "ms": 3000.0},
               {"target": "f.py:2", "k": 1, "kind": "typing", "status": "cancelled", "ms": None}]
    typing = {arm: {"samples": samples, "lines": [{"target": "f.py:1", "first": "first_file",
                                                   "chars": 10, "saved": 4}]}
              for arm in hits}
    arms: dict[str, Any] = {arm: {"description": arm} for arm in hits}
    arms["psm_plain"] = {"pending": "the server has no setting slm.model.kvSplice yet"}
    return {"repo": {"name": name, "root": "/x", "requirement": None, "files": 1},
            "targets": [], "typing_targets": [], "tasks": tasks, "typing": typing,
            "arms": arms, "servers": {"retrieval": {
                "rss_mib": 700.0, "peak_rss_mib": 710.0, "splice": True,
                "idle": {"cpu_percent": 0.0}, "sessions": [{}, {}],
                "leak_check": {"copies": 2, "problems": []}}}}


def _doc(load: float, targets: int) -> dict[str, Any]:
    raws = [_raw("alpha", {"no_retrieval": [True, False, False, False],
                           "retrieval": [True, True, False, True]}),
            _raw("beta", {"no_retrieval": [True, True, True, False],
                          "retrieval": [True, True, True, True]})]
    doc: dict[str, Any] = {
        "command": "slm-lsp bench --devset", "timestamp": "2026-01-01T00:00:00+00:00",
        "commit": {"hash": "abc123", "dirty": False},
        "machine": {"cores": 2, "usable_cores": 2, "cpu_model": "Test CPU", "memory_gib": 8,
                    "python": "3.11", "os": "Linux", "load_start": [load, 1.0, 1.0],
                    "load_end": [1.0, 1.0, 1.0]},
        "model": {"name": "m", "file": "m.gguf", "sha256_prefix": "0123456789abcdef"},
        "options": {"targets": targets, "typing": 1, "seed": 0, "debounce_ms": 50,
                    "pace_ms": 0},
        "settings": {"no_retrieval": {"sent": {"index": {"enabled": False}}}},
        "seconds": 120.0,
        "repos": {r["repo"]["name"]: {"repo": r["repo"], "summary":
                                      bench_summary.summarize_repo(r, 0), "servers": r["servers"],
                                      "raw": {}} for r in raws},
    }
    doc["total"] = bench_summary.summarize_total(raws, 0)
    return doc


def test_summaries_from_raw_records():
    doc = _doc(0.1, 100)
    alpha = doc["repos"]["alpha"]["summary"]
    assert alpha["arms"]["no_retrieval"]["exact_match"] == 0.25
    assert alpha["arms"]["retrieval"]["exact_match"] == 0.75
    assert alpha["arms"]["retrieval"]["n"] == 8 and alpha["arms"]["retrieval"]["targets"] == 4
    assert alpha["arms"]["psm_plain"]["pending"]
    assert alpha["retrieval_vs_no_retrieval"]["diff"] == pytest.approx(0.5)
    total = doc["total"]
    assert total["arms"]["retrieval"]["n"] == 16
    assert total["retrieval_vs_no_retrieval"]["n_units"] == 8
    assert total["retrieval_vs_no_retrieval"]["diff"] == pytest.approx((2 + 1) / 8)
    latency = total["latency"]
    assert latency["arm"] == "retrieval" and latency["first_file_p50"] == 9000.0
    assert latency["first_line_p50"] == 3000.0 and latency["typing_p50"] == 200.0
    assert latency["cancelled"] == 2 and latency["chars_saved"] == 8
    assert set(latency) >= {"first_p50", "first_p95", "typing_p50", "typing_p95", "chars_saved"}
    json.dumps(doc)  # the results file is plain JSON


def test_new_defaults_are_paired_with_todays_arm_when_it_ran():
    raw = _raw("alpha", {"today": [True, True, False, False],
                         "defaults": [True, False, True, True]})
    summary = bench_summary.summarize_repo(raw, 0)
    assert summary["vs_no_retrieval"] == {}  # no baseline run, no rows
    versus = summary["vs_today"]
    assert set(versus) == {"defaults"}
    assert versus["defaults"]["n_units"] == 4
    assert versus["defaults"]["diff"] == pytest.approx(0.25)
    assert versus["defaults"]["similarity"]["diff"] == pytest.approx(0.2)
    doc = _doc(0.1, 100)
    doc["repos"] = {"alpha": {"repo": raw["repo"], "summary": summary,
                              "servers": raw["servers"], "raw": {}}}
    doc["total"] = bench_summary.summarize_total([raw], 0)
    text = bench_report.render(doc)
    assert "### Each arm minus today" in text and "### Each arm minus no_retrieval" not in text
    assert "| alpha | defaults | 4 | +25.0 pts | [" in text


def test_report_renders_tables_labels_and_command():
    text = bench_report.render(_doc(load=3.5, targets=5))
    assert text.startswith("# Completion benchmark")
    assert "do not edit by hand" in text
    assert "Small run: 5 targets per repository" in text
    assert "Busy machine: load average 3.5" in text
    assert "Pending arms (not run): psm_plain" in text
    assert "| alpha | retrieval | 8 | 75.0% |" in text
    assert "| **total** | retrieval | 16 | 87.5% |" in text
    assert "| alpha | 4 | +50.0 pts | [" in text
    assert "| alpha | retrieval | 1 | 9.0 s / 9.0 s | 3.0 s / 3.0 s |" in text
    assert "| 200 ms / 200 ms | 0.0% |" in text
    assert "4/10 (40.0%)" in text
    assert "ok (2 copies)" in text
    assert "```\nslm-lsp bench --devset\n```" in text
    assert "Test CPU, 2 cores" in text and "sha256 0123456789abcdef" in text


def test_quiet_full_run_has_no_warning_labels():
    text = bench_report.render(_doc(load=0.1, targets=100))
    assert "Small run" not in text and "Busy machine" not in text


class SlowServer(FakeServer):
    """Answers each request after ``delay`` seconds (slower than the typist)."""

    def __init__(self, delay: float) -> None:
        super().__init__([])
        self.delay = delay

    def request(self, rel: str, row: int, column: int) -> Pending:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        loop.call_later(self.delay, lambda: future.done() or future.set_result("zzz"))
        self.events.append(("request", (row, column, self.docs[rel][row])))
        return FakePending(f"id{column}", f"{rel}:{row + 1}", future, 0.0)


async def test_paced_typing_cancels_requests_overtaken_by_keystrokes():
    target = _target()
    server = SlowServer(delay=0.2)
    samples, line = await replay_line(server, target, masked_lines(SOURCE, [target]), "first_file",  # type: ignore[arg-type]
                                      Options(debounce_ms=5, pace_ms=30, think_ms=0))
    assert "\n".join(server.docs[target.path]) == SOURCE
    assert len(samples) == len(target.code)
    assert {s["status"] for s in samples} <= {"cancelled", "stale"}
    assert len(server.cancelled) == sum(1 for s in samples if s["status"] == "cancelled") > 0
    assert line["saved"] == 0


def test_first_line_moves_measure_the_distance_from_the_previous_typed_line() -> None:
    from slm_lsp.bench.report import first_line_moves

    typing = {
        "lines": [{"target": "a.py:10", "first": "first_file"},
                  {"target": "a.py:14", "first": "first_line"},
                  {"target": "b.py:3", "first": "first_file"},
                  {"target": "a.py:90", "first": "first_line"}],
        "samples": [{"target": "a.py:10", "k": 0, "status": "ok", "ms": 9000.0},
                    {"target": "a.py:14", "k": 0, "status": "ok", "ms": 700.0},
                    {"target": "a.py:14", "k": 1, "status": "ok", "ms": 2.0},
                    {"target": "b.py:3", "k": 0, "status": "ok", "ms": 8000.0},
                    {"target": "a.py:90", "k": 0, "status": "error", "ms": None}],
    }
    moves = first_line_moves(typing)
    assert [(m["from"], m["to"], m["lines"], m["ms"]) for m in moves] == [
        (10, 14, 4, 700.0), (14, 90, 76, None)]


def test_outside_names_are_the_answers_names_only_other_files_have():
    helper = "def fetch_rows(db):\n    return list(db.rows[:len(db.rows)])\n"
    body = "\n".join(f"    filler_{i} = {i}" for i in range(40))
    main = f"def run(db):\n{body}\n    rows = fetch_rows(db) + len(local_name)\n    return rows\n"
    files = {"main.py": main, "helper.py": helper}
    row = main.split("\n").index("    rows = fetch_rows(db) + len(local_name)")
    target = make_target("main.py", row, main.split("\n")[row], "python", 0)
    names = file_names(files)
    # The prompt's window reaches the top of the file: fetch_rows is only in helper.py;
    # len is a builtin, rows and db are in the window, local_name is in no other file.
    assert outside_names(target, "whole_line", files, names, 1536, 256) == ["fetch_rows"]
    files["main.py"] = "x = fetch_rows\n" + main
    names = file_names(files)
    target = make_target("main.py", row + 1, target.text, "python", 0)
    assert outside_names(target, "whole_line", files, names, 1536, 256) == []
    # ...unless the window is too short to reach that first line (40 lines of filler);
    # then rows and db, which helper.py has too, are missing from it as well.
    assert outside_names(target, "whole_line", files, names, 20, 0) == ["rows", "fetch_rows", "db"]
    # A rest-of-line task after the name has nothing left to find.
    late = Target("main.py", row + 1, target.text, 4, target.text.index("+"), "python")
    assert outside_names(late, "rest_of_line", files, names, 1536, 256) == []
    # A cursor inside a word: the whole word counts, not the tail after the cursor
    # ("ows" of fetch_rows is in no file; "one" of None is in helper.py's text).
    inside = Target("main.py", row + 1, target.text, 4, target.text.index("_rows") + 2, "python")
    assert outside_names(inside, "rest_of_line", files, names, 20, 0) == ["fetch_rows", "db"]
    files["helper.py"] += "# one more\n"
    names = file_names(files)
    text = "    return None if db else rows"
    in_none = Target("main.py", row + 1, text, 4, text.index("None") + 1, "python")
    assert outside_names(in_none, "rest_of_line", files, names, 1536, 256) == []


def test_report_splits_exact_match_by_whether_another_file_is_needed():
    doc = _doc(0.1, 100)
    raw = _raw("alpha", {"no_retrieval": [True, False, False, False],
                         "retrieval": [True, True, False, True]})
    for key, task in raw["tasks"].items():
        task["outside_names"] = ["helper"] if key.startswith(("f.py:2#", "f.py:4#")) else []
    split = bench_report.outside_split(list(raw["tasks"].values()), "retrieval")
    assert split == {"n": 8, "outside_n": 4, "outside_exact": 1.0, "rest_n": 4,
                     "rest_exact": 0.5}
    assert bench_report.outside_split(list(raw["tasks"].values()), "psm_plain") is None
    doc["repos"] = {"alpha": {**doc["repos"]["alpha"], "raw": {"tasks": raw["tasks"]}}}
    text = bench_report.render(doc)
    assert "### Where repository context can help" in text
    assert "| alpha | no_retrieval | 4/8 | 0.0% | 4 | 50.0% |" in text
    assert "| alpha | retrieval | 4/8 | 100.0% | 4 | 50.0% |" in text
    # no_retrieval answers 2 of 8; with all 4 tasks that need another file exact, 6 of 8.
    assert bench_report.retrieval_ceiling(list(raw["tasks"].values())) == {
        "exact": 0.25, "ceiling": 0.75, "ratio": 3.0}
    assert "from 25.0% (no_retrieval) to 75.0%, 3.00 times as much" in text
    del raw["tasks"]["f.py:1#whole_line"]["outside_names"]  # an older results file
    assert "Where repository context can help" not in bench_report.render(doc)


def test_memory_session_hovers_a_function_name_and_refuses_a_missing_folder(tmp_path: Path):
    from slm_lsp.bench.memory import hover_spot, main

    lines = ["def early():", "    pass", "x = 1", "y = 2", "", "    def later(self):", "z"]
    spot = hover_spot(lines)
    assert (spot.line, spot.character) == (5, 8) and lines[5][spot.character:].startswith("later")
    spot = hover_spot(["x = 1", "def only():", "y", "z", "w"])  # nothing after a quarter: wrap
    assert (spot.line, spot.character) == (1, 4)
    assert main([str(tmp_path / "missing")]) == 2


async def test_a_reading_pause_ends_when_the_server_says_its_warm_ups_are_done() -> None:
    """--read-s: after opening a file the cursor is reported at the line and the replay
    waits for the server's "region warm-ups done" log line (or the limit)."""
    target = _target()
    server = FakeServer(["x"] * 80)
    server.settings = {"completion": {"warmRegions": 8}}  # type: ignore[attr-defined]
    server.log = SimpleNamespace(warm_done=0)  # type: ignore[attr-defined]

    async def warm_done_later() -> None:
        await asyncio.sleep(0.3)
        server.log.warm_done += 1  # type: ignore[attr-defined]

    task = asyncio.ensure_future(warm_done_later())
    _, line = await replay_line(server, target, masked_lines(SOURCE, [target]), "first_file",  # type: ignore[arg-type]
                                Options(debounce_ms=0, read_s=5, think_ms=0))
    await task
    assert ("cursor", (target.line, target.indent)) in server.events
    assert 0.3 <= line["read_s"] < 2
    # no pause for a line of a file already open, nor for arms without warm-ups
    _, line = await replay_line(server, target, masked_lines(SOURCE, [target]), "first_line",  # type: ignore[arg-type]
                                Options(debounce_ms=0, read_s=5, think_ms=0))
    assert line["read_s"] == 0
    server.settings = {"completion": {"warmRegions": 0}}  # type: ignore[attr-defined]
    _, line = await replay_line(server, target, masked_lines(SOURCE, [target]), "first_file",  # type: ignore[arg-type]
                                Options(debounce_ms=0, read_s=5, think_ms=0))
    assert line["read_s"] == 0


def test_first_answers_pair_the_replay_with_the_quality_run() -> None:
    from slm_lsp.bench.report import first_answers

    raw = {"tasks": {"a.py:3#whole_line": {"arms": {"x": {"exact": True}}},
                     "a.py:9#whole_line": {"arms": {"x": {"exact": False}}},
                     "a.py:12#whole_line": {"arms": {"y": {"exact": True}}}},
           "typing": {"x": {"lines": [{"target": "a.py:3", "first_exact": False},
                                      {"target": "a.py:9", "first_exact": True},
                                      {"target": "a.py:12", "first_exact": True},
                                      {"target": "a.py:20", "first_exact": None}]}}}
    assert first_answers(raw, "x") == (2, 1, 1)


def test_decode_bench_asks_both_tasks_of_each_target_on_the_masked_text(tmp_path: Path):
    from slm_lsp.bench.decode import contexts, rules
    repo = tmp_path / "repo"
    (repo / "pkg").mkdir(parents=True)
    body = "".join(f"    total_{i} = compute_value(items[{i}], scale={i})\n" for i in range(30))
    (repo / "pkg" / "mod.py").write_text(f"def run(items):\n{body}    return total_0\n")
    found = contexts([repo], 3, seed=1)
    assert len(found) == 6
    for whole, rest in zip(found[::2], found[1::2], strict=True):
        assert whole.line == rest.line and whole.path == rest.path == "repo/pkg/mod.py"
        line = whole.prefix.split("\n")[-1]
        assert line.strip() == "" and whole.character == len(line) == 4
        assert whole.suffix.split("\n")[0] == "", "the target line is masked after the cursor"
        assert rest.character > 4 and rest.suffix.split("\n")[0] == ""
    default = rules(SimpleNamespace(draft_tokens=8, prompt_draft_tokens=4,
                                    prompt_draft_keys=(3,)))  # type: ignore[arg-type]
    assert [r.name for r in default] == ["off", "wide", "default"]
    assert default[0].draft_tokens == 0 and default[2].prompt_draft_tokens == 4


def test_hover_bench_sorts_answers_and_takes_the_first_hover_of_each_server() -> None:
    from slm_lsp.bench.hover import _kind, summarize

    assert _kind("sig\n\n---\n\nIt adds.\n\n*slm-lsp · qwen · 3.1 s*") == "model"
    assert _kind("sig\n\n---\n\nIt adds.\n\n*slm-lsp · qwen · cached*") == "cached"
    assert _kind("sig\n\n---\n\n*No explanation: the model gave none.*") == "none"
    assert _kind("It.\n\n*slm-lsp · qwen · 9.0 s · cut short by the time budget*") == "cut short"
    assert _kind("`def f()` in a.py") == "header only"
    hovers = [{"repo": "a", "seconds": 9.0, "error": None, "index_building": True, "explanation": "model"},
              {"repo": "a", "seconds": 1.0, "error": None, "index_building": False, "explanation": "model"},
              {"repo": "b", "seconds": 3.0, "error": None, "index_building": False, "explanation": "none"},
              {"repo": "b", "seconds": 120.0, "error": "TimeoutError: ", "index_building": False,
               "explanation": "header only"}]
    hovers.append({"repo": "b", "seconds": 0.0, "error": None, "index_building": False,
                   "explanation": "header only"})  # no definition there: not timed
    summary = summarize(hovers)
    assert summary["p50_s"] == 3.0 and summary["first_p50_s"] == 6.0
    assert summary["while_building"] == 1 and summary["errors"] == 1
    assert summary["explanations"] == {"model": 2, "none": 1, "header only": 2}
