"""`python -m slm_lsp.bench.pair`: one arm of two results files, paired by target and task."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from slm_lsp.bench import pair


def doc(repo: str, arm: str, hits: dict[str, bool]) -> dict[str, Any]:
    """A results file holding ``arm``'s whole-line answers, exact where ``hits`` says."""
    tasks = {f"{t}#whole_line": {"target": t, "task": "whole_line",
                                 "arms": {arm: {"text": "x" if ok else "", "exact": ok,
                                                "similarity": 1.0 if ok else 0.0}}}
             for t, ok in hits.items()}
    return {"repos": {repo: {"raw": {"tasks": tasks}}}}


def test_only_tasks_both_files_answered_are_paired_and_the_difference_is_other_minus_base(
        tmp_path: Path) -> None:
    base = doc("r", "defaults", {"a.py:1": True, "a.py:2": False, "a.py:3": False})
    other = doc("r", "q", {"a.py:1": True, "a.py:2": True, "a.py:9": True})
    rows = pair.pair(base, other, "defaults", "q", ("K", "Q"))
    r = rows["r"]
    assert r["tasks"] == 2 and r["exact"] == (0.5, 1.0) and r["empty"] == (1, 0)
    assert r["exact_diff"]["diff"] == 0.5 and r["exact_diff"]["n_units"] == 2
    assert "**total**" not in rows  # one repository: no pooled row
    files = []
    for name, d in (("b.json", base), ("o.json", other)):
        (tmp_path / name).write_text(json.dumps(d))
        files.append(str(tmp_path / name))
    out = tmp_path / "pair.md"
    assert pair.main([*files, "--other-arm", "q", "--label-base", "K", "--label-other", "Q",
                      "--out", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("# Q against K") and "| r | 2 | 50.0% | 100.0% | +50.0 pts |" in text


def test_files_without_common_tasks_are_an_error(tmp_path: Path) -> None:
    for name, d in (("b.json", doc("r", "defaults", {"a.py:1": True})),
                    ("o.json", doc("s", "defaults", {"a.py:1": True}))):
        (tmp_path / name).write_text(json.dumps(d))
    assert pair.main([str(tmp_path / "b.json"), str(tmp_path / "o.json"),
                      "--out", str(tmp_path / "x.md")]) == 1
    assert pair.main([str(tmp_path / "missing.json"), str(tmp_path / "o.json"),
                      "--out", str(tmp_path / "x.md")]) == 2
