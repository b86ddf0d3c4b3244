"""Summaries of a run's raw records: rates, latency percentiles, paired differences,
per arm, per repository and pooled.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from .targets import TASKS, bootstrap_diff, mean, percentile

FAST_MS = 100.0
"""Typing answers faster than this did not wait for the model (result cache)."""


def rate(values: Iterable[bool | float]) -> float | None:
    items = [float(v) for v in values]
    value = mean(items)
    return None if value is None else round(value, 4)


def arm_summary(tasks: Sequence[dict[str, Any]], arm: str) -> dict[str, Any]:
    """Exact match, edit similarity and request latency of one arm over ``tasks``.

    An error or empty answer counts as a miss (scored against the empty string).
    """
    rows = [(t, t["arms"][arm]) for t in tasks if arm in t.get("arms", {})]
    ms = [r["ms"] for _, r in rows if r.get("ms") is not None and not r.get("error")]
    summary: dict[str, Any] = {
        "n": len(rows),
        "targets": len({t["target"] for t, _ in rows}),
        "exact_match": rate(r["exact"] for _, r in rows),
        "edit_similarity": rate(r["similarity"] for _, r in rows),
        "exact_full": rate(r["exact_full"] for _, r in rows),
        "errors": sum(1 for _, r in rows if r.get("error")),
        "empty": sum(1 for _, r in rows if not r.get("error") and not r.get("text")),
        "request_ms_p50": _round(percentile(ms, 0.5)),
        "request_ms_p95": _round(percentile(ms, 0.95)),
        "by_task": {},
    }
    for task in TASKS:
        picked = [r for t, r in rows if t["task"] == task]
        summary["by_task"][task] = {"n": len(picked),
                                    "exact_match": rate(r["exact"] for r in picked),
                                    "edit_similarity": rate(r["similarity"] for r in picked)}
    return summary


def paired_units(tasks: Sequence[dict[str, Any]], a: str, b: str,
                 field: str = "exact") -> list[tuple[float, float]]:
    """Per target, the mean ``field`` (exact match, or ``similarity``) of arms ``a`` and ``b``
    over the tasks both answered."""
    units: dict[str, list[tuple[float, float]]] = {}
    for task in tasks:
        arms = task.get("arms", {})
        if a in arms and b in arms:
            units.setdefault(task["target"], []).append(
                (float(arms[a][field]), float(arms[b][field])))
    return [(sum(x for x, _ in v) / len(v), sum(y for _, y in v) / len(v))
            for _, v in sorted(units.items())]


def latency_summary(typing: dict[str, Any]) -> dict[str, Any]:
    """p50/p95 of cold and typing requests (ms), and characters saved, from raw samples."""
    samples = typing.get("samples", [])
    lines = typing.get("lines", [])

    def ok(*kinds: str) -> list[float]:
        return [s["ms"] for s in samples if s["status"] == "ok" and s["kind"] in kinds]

    first = ok("first_file", "first_line")
    chars = sum(line["chars"] for line in lines)

    def suggestion(kind: str) -> list[float]:
        """Time to the first non-empty suggestion at a place; a line that never got one
        counts as the whole line's typing time (the clock never stopped)."""
        return [line["first_suggestion_ms"] if line.get("first_suggestion_ms") is not None
                else float("inf") for line in lines if line.get("first") == kind
                and "first_suggestion_ms" in line]

    saved = sum(line["saved"] for line in lines)
    return {
        "unit": "ms",
        "lines": len(lines),
        "first_p50": _round(percentile(first, 0.5)),
        "first_p95": _round(percentile(first, 0.95)),
        "first_file_p50": _round(percentile(ok("first_file"), 0.5)),
        "first_file_p95": _round(percentile(ok("first_file"), 0.95)),
        "first_line_p50": _round(percentile(ok("first_line"), 0.5)),
        "first_line_p95": _round(percentile(ok("first_line"), 0.95)),
        "first_suggestion_file_p50": _round(percentile(suggestion("first_file"), 0.5)),
        "first_suggestion_file_p95": _round(percentile(suggestion("first_file"), 0.95)),
        "first_suggestion_line_p50": _round(percentile(suggestion("first_line"), 0.5)),
        "first_suggestion_line_p95": _round(percentile(suggestion("first_line"), 0.95)),
        "first_empty": sum(1 for line in lines if line.get("first_empty")),
        "typing_p50": _round(percentile(ok("typing"), 0.5)),
        "typing_p95": _round(percentile(ok("typing"), 0.95)),
        "typing_fast_fraction": _fraction(ok("typing"), FAST_MS),
        "chars_saved": saved,
        "chars_total": chars,
        "chars_saved_fraction": round(saved / chars, 4) if chars else None,
        "requests": len(samples),
        "cancelled": sum(1 for s in samples if s["status"] == "cancelled"),
        "stale": sum(1 for s in samples if s["status"] == "stale"),
        "errors": sum(1 for s in samples if s["status"] == "error"),
    }


def _fraction(values: Sequence[float], limit: float) -> float | None:
    """Share of ``values`` below ``limit``."""
    return round(sum(1 for v in values if v < limit) / len(values), 4) if values else None


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


ROUTER_THRESHOLDS = (0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
"""Mean token probabilities under which the routing curve sends a task to the large model."""


def router_curve(tasks: Sequence[dict[str, Any]], small: str = "small", large: str = "large",
                 thresholds: Sequence[float] = ROUTER_THRESHOLDS) -> list[dict[str, Any]]:
    """What routing would give at each threshold, from the small and large arms' answers to
    the same tasks: a task whose small answer has a mean token probability under the
    threshold takes the large arm's answer, and its latency is both requests' (the
    small model answers first, then the large one is asked)."""
    import math

    pairs = [(t["arms"][small], t["arms"][large]) for t in tasks
             if small in t.get("arms", {}) and large in t.get("arms", {})]
    rows = []
    for limit in thresholds:
        exact, similarity, ms, escalated = [], [], [], 0
        for a, b in pairs:
            lp = a.get("mean_logprob")
            up = lp is not None and math.exp(lp) < limit
            escalated += up
            pick = b if up else a
            exact.append(float(pick["exact"]))
            similarity.append(float(pick["similarity"]))
            if a.get("ms") is not None and (not up or b.get("ms") is not None):
                ms.append(a["ms"] + (b["ms"] if up else 0.0))
        rows.append({"below": limit, "n": len(pairs),
                     "escalated": round(escalated / len(pairs), 4) if pairs else None,
                     "exact_match": rate(exact), "edit_similarity": rate(similarity),
                     "ms_mean": _round(mean(ms)), "ms_p50": _round(percentile(ms, 0.5)),
                     "ms_p95": _round(percentile(ms, 0.95))})
    return rows


def product_arm(arms: dict[str, Any]) -> str | None:
    """The arm that is the product as shipped (index on), else the closest one that ran."""
    for name in ("retrieval", "no_retrieval", "psm_plain"):
        if name in arms and "pending" not in arms[name] and arms[name].get("n"):
            return name
    return None


def versus(tasks: Sequence[dict[str, Any]], arms: dict[str, Any], base: str, seed: int
           ) -> dict[str, Any]:
    """Each finished arm minus ``base`` on identical targets: exact match and edit similarity,
    paired bootstrap intervals. Empty when ``base`` did not run."""
    if base not in arms or "pending" in arms[base]:
        return {}
    return {name: {**bootstrap_diff(paired_units(tasks, base, name), seed=seed),
                   "similarity": bootstrap_diff(paired_units(tasks, base, name, "similarity"),
                                                seed=seed)}
            for name in arms if name not in (base, "no_retrieval", "psm_plain")
            and "pending" not in arms[name]}


def summarize(tasks: Sequence[dict[str, Any]], typing: dict[str, dict[str, Any]],
              arm_info: dict[str, Any], seed: int) -> dict[str, Any]:
    """Arms, retrieval - no_retrieval interval, and latency from raw records."""
    arms: dict[str, Any] = {}
    for name, info in arm_info.items():
        arms[name] = dict(info) if "pending" in info else {**info, **arm_summary(tasks, name)}
        tokens = arms[name].pop("context_tokens", None)
        if tokens:
            arms[name]["context_tokens_mean"] = round(sum(tokens) / len(tokens), 1)
            arms[name]["contexts"] = len(tokens)
    latency_by_arm = {name: latency_summary(t) for name, t in typing.items()}
    chosen = product_arm(arms)
    latency = dict(latency_by_arm.get(chosen, {})) if chosen else {}
    if chosen:
        latency["arm"] = chosen
    return {
        "arms": arms,
        "retrieval_vs_no_retrieval": bootstrap_diff(
            paired_units(tasks, "no_retrieval", "retrieval"), seed=seed),
        "vs_no_retrieval": versus(tasks, arms, "no_retrieval", seed),
        "vs_today": versus(tasks, arms, "today", seed),
        "latency": latency,
        "latency_by_arm": latency_by_arm,
        "router_curve": router_curve(tasks) if {"small", "large"} <= set(arms) else [],
    }


def summarize_repo(raw: dict[str, Any], seed: int) -> dict[str, Any]:
    """The summary of one repository's raw results."""
    return summarize(list(raw["tasks"].values()), raw["typing"], raw["arms"], seed)


def summarize_total(raws: Sequence[dict[str, Any]], seed: int) -> dict[str, Any]:
    """The summary pooled over repositories (every task and sample counts once)."""
    tasks: list[dict[str, Any]] = []
    typing: dict[str, dict[str, Any]] = {}
    arm_info: dict[str, Any] = {}
    for raw in raws:
        name = raw["repo"]["name"]
        tasks += [{**t, "target": f"{name}/{t['target']}"} for t in raw["tasks"].values()]
        for arm, data in raw["typing"].items():
            pooled = typing.setdefault(arm, {"samples": [], "lines": []})
            pooled["samples"] += data["samples"]
            pooled["lines"] += data["lines"]
        for arm, info in raw["arms"].items():
            if "pending" in info or arm not in arm_info:
                arm_info[arm] = {**info, "context_tokens": list(info.get("context_tokens", []))}
            elif info.get("context_tokens"):
                arm_info[arm]["context_tokens"] += info["context_tokens"]
    return summarize(tasks, typing, arm_info, seed)
