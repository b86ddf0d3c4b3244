"""The soak and scale benchmarks' arithmetic and reports, on made-up samples (no server)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from slm_lsp.bench import scale, soak


def samples(rss: list[float], threads: list[int], fds: list[int],
            step: float = 10.0) -> list[dict[str, Any]]:
    return [{"t": i * step, "rss_mib": r, "threads": t, "fds": f}
            for i, (r, t, f) in enumerate(zip(rss, threads, fds, strict=True))]


FIRST, LAST = (60.0, 110.0), (240.0, 290.0)
"""The two windows of 30 samples 10 s apart: 0-50 s the build (ignored), then the first
window; the last at the end."""


def test_growth_compares_the_first_window_with_the_last() -> None:
    rss = [900.0] * 6 + [1000.0] * 6 + [1010.0] * 12 + [1040.0] * 6
    rows = samples(rss, [20] * 30, [12] * 30)
    g = soak.growth(rows, FIRST, LAST)
    assert g["rss_first_mib"] == 1000.0 and g["rss_last_mib"] == 1040.0
    assert g["first_window_s"] == [60.0, 110.0] and g["last_window_s"] == [240.0, 290.0]
    assert g["rss_growth_mib"] == 40.0 and g["met"]
    too_much = soak.growth(samples([*rss[:-6], *[1060.0] * 6], [20] * 30, [12] * 30),
                           FIRST, LAST)
    assert too_much["rss_growth_mib"] == 60.0 and not too_much["met"]
    # samples outside the windows do not count, however high or low
    dip = soak.growth(samples([*rss[:12], *[500.0] * 12, *rss[24:]], [20] * 30, [12] * 30),
                      FIRST, LAST)
    assert dip["rss_first_mib"] == 1000.0 and dip["rss_growth_mib"] == 40.0


def test_a_burst_in_the_last_window_is_not_growth_but_a_raised_floor_is() -> None:
    # An explanation context (75 MiB) alive for most of the last minute, then freed.
    burst = [900.0] * 6 + [1000.0] * 6 + [1000.0] * 12 + [1075.0] * 5 + [1000.0]
    g = soak.growth(samples(burst, [20] * 30, [12] * 30), FIRST, LAST)
    assert g["rss_last_median_mib"] == 1075.0 and g["rss_growth_mib"] == 0.0 and g["met"]
    leak = [900.0] * 6 + [1000.0] * 6 + [1030.0] * 12 + [1135.0] * 5 + [1060.0]
    g = soak.growth(samples(leak, [20] * 30, [12] * 30), FIRST, LAST)
    assert g["rss_growth_mib"] == 60.0 and not g["met"]


def test_threads_or_descriptors_that_never_return_count_as_a_leak() -> None:
    threads = [20] * 6 + [20, 24, 20, 22, 20, 20] + [22] * 12 + [23, 24, 22, 23, 22, 22]
    come_and_go = soak.growth(samples([1000.0] * 30, threads, [12] * 30), FIRST, LAST)
    assert come_and_go["threads_before_most"] == 24 and come_and_go["threads_last_fewest"] == 22
    assert come_and_go["met"]
    fds = [12] * 6 + [12 + i // 6 for i in range(24)]  # one more every minute
    leak = soak.growth(samples([1000.0] * 30, [20] * 30, fds), FIRST, LAST)
    assert leak["fds_last_fewest"] == 15 > leak["fds_before_most"] == 14 and not leak["met"]


def test_a_pool_that_grows_once_is_not_a_leak_but_a_rising_floor_is() -> None:
    # 60-110 s the first window; a pool thread added at 150 s stays to the end.
    once = [20] * 6 + [20] * 6 + [20] * 3 + [21] * 15
    pool = soak.growth(samples([1000.0] * 30, once, [12] * 30), FIRST, LAST)
    assert pool["threads_before_most"] == 21 == pool["threads_last_fewest"] and pool["met"]
    # One thread more with every action, none returned: the last minute's floor is new.
    rising = [20] * 6 + [20 + i // 3 for i in range(24)]
    leak = soak.growth(samples([1000.0] * 30, rising, [12] * 30), FIRST, LAST)
    assert leak["threads_last_fewest"] > leak["threads_before_most"] and not leak["met"]


def test_a_run_too_short_for_two_windows_is_not_met() -> None:
    assert not soak.growth(samples([1.0] * 3, [1] * 3, [1] * 3), FIRST, LAST)["met"]


def test_process_sample_of_this_process() -> None:
    now = soak.proc_sample(os.getpid())
    assert now["rss_mib"] and now["rss_mib"] > 1 and now["threads"] and now["fds"]


def test_mappings_of_this_process_add_up_to_its_resident_memory() -> None:
    held = soak.mappings(os.getpid())
    rss = soak.proc_sample(os.getpid())["rss_mib"]
    assert held and "[heap]" in held and any(name.startswith("libpython") or
                                             name.startswith("python") for name in held)
    assert rss is not None and abs(sum(held.values()) - rss) < 0.1 * rss


def test_mapping_growth_names_the_largest_changes_first() -> None:
    first = {"[heap]": 100.0, "model.gguf": 400.0, "other anonymous": 50.0, "libc.so.6": 2.0}
    last = {"[heap]": 130.0, "model.gguf": 390.0, "other anonymous": 50.2, "libx.so": 3.0}
    assert soak.mapping_growth(first, last) == [
        ("[heap]", 100.0, 130.0), ("model.gguf", 400.0, 390.0), ("libx.so", 0.0, 3.0),
        ("libc.so.6", 2.0, 0.0)]
    assert soak.mapping_growth(first, last, top=1) == [("[heap]", 100.0, 130.0)]


def test_soak_settings_record_the_thread_count() -> None:
    assert soak.soak_settings() == soak.SETTINGS
    assert soak.soak_settings(1) == {**soak.SETTINGS, "model": {"threads": 1}}


def test_a_rest_outlasts_an_explanation_context_by_the_window() -> None:
    from slm_lsp.settings import ExplainSettings

    assert soak.rest_s(soak.soak_settings()) == ExplainSettings.release_after_s + soak.REST_WINDOW_S
    short = soak.soak_settings(release_s=10)
    assert short["explain"] == {"releaseAfterS": 10}
    assert soak.rest_s(short) == 10 + soak.REST_WINDOW_S


def test_soak_report() -> None:
    rows = samples([1000.0] * 30, [20] * 30, [12] * 30)
    result = {"packages": ["attrs==25.4.0"], "settings": soak.soak_settings(1),
              "build_ended_s": 50.0, "warmup_s": 10.0, "minutes": 4.0, "alive": True,
              "actions": {"type": 9, "hover": 2}, "requests": {"answered": 5},
              "errors": [], "growth": soak.growth(rows, FIRST, LAST),
              "machine": {"cpu_model": "cpu", "cores": 2, "load_start": [0.1, 0.2, 0.3]},
              "load_end": [1.0, 1.0, 1.0], "commit": {"hash": "abc", "dirty": True},
              "command": "python -m slm_lsp.bench.soak --minutes 4"}
    text = soak.render(result)
    assert '"threads": 1' in text and "stayed up" in text and "Bars met: True" in text
    assert "at rest after the warm-up (60-110 s) | at rest after the editing (240-290 s)" in text
    assert "then 10 s of warm-up, a rest of 90 s, 4.0 minutes of editing" in text
    assert "- machine: cpu, 2 cores, load average at the start [0.1, 0.2, 0.3], at the end " \
        "[1.0, 1.0, 1.0]; commit abc (dirty)" in text
    assert text.endswith("```\npython -m slm_lsp.bench.soak --minutes 4\n```\n")
    assert "Where the resident memory" not in text  # samples without their parts
    for i, row in enumerate(rows):
        row.update({key: 1.0 for key in soak.PARTS},
                   maps={"[heap]": 100.0 + i, "model.gguf": 400.0})
    text = soak.render({**result, "growth": soak.growth(rows, FIRST, LAST)})
    assert "| first window | 1000.0 | 1.0 | 1.0 | 1.0 | 1.0 | 1.0 | 1.0 |" in text
    assert "| [heap] | 106.0 | 124.0 | +18.0 |" in text and "| model.gguf |" not in text


def task(kind: str, ms: float, during: bool = True, error: str | None = None) -> dict[str, Any]:
    return {"kind": kind, "ms": ms, "during_build": during, "error": error}


def test_slowdown_counts_only_requests_answered_during_the_build() -> None:
    build = [task("open", 3000.0), task("typing", 400.0), task("typing", 900.0, during=False),
             task("open", 100.0, error="boom")]
    quiet = [task("open", 2500.0), task("typing", 350.0), task("typing", 100.0),
             task("open", 90.0)]
    cmp = scale.compare(build, quiet)
    assert cmp["open"] == {"requests": 1, "build_median_ms": 3000.0, "quiet_median_ms": 2500.0,
                           "slower_median_ms": 500.0, "slower_mean_ms": 500.0,
                           "slower_max_ms": 500.0}
    assert cmp["all"]["requests"] == 2 and cmp["all"]["slower_max_ms"] == 500.0


def test_scale_report_judges_both_bars() -> None:
    build = [task("open", 3000.0), task("typing", 400.0)]
    quiet = [task("open", 2500.0), task("typing", 350.0)]
    progress = {"reports": 40, "longest_gap_s": 12.5, "percentages_rise": True,
                "first": ["scanning"], "last": ["done"]}
    result: dict[str, Any] = {
        "requirement": "django==5.2.19", "files": 2932, "targets": ["a.py:1"],
        "build": {"index": "6000 files", "index_s": 3000.0, "peak_rss_mib": 1400.0,
                  "rss_mib": 1300.0, "progress": progress, "tasks": build,
                  "contexts_with_similar_chunks": 0, "log": "build.log"},
        "nobuild": {"tasks": quiet, "contexts_with_similar_chunks": 0, "log": "quiet.log"},
        "restart": {"index_s": 20.0, "index": "6000 files", "peak_rss_mib": 1200.0},
        "slowdown": scale.compare(build, quiet),
        "machine": {"cpu_model": "cpu", "cores": 2, "load_start": [0.0, 0.0, 0.0]},
        "load_end": [2.0, 2.0, 2.0], "model": {"file": "m.gguf"},
        "commit": {"hash": "abc", "dirty": False}, "command": "python -m slm_lsp.bench.scale"}
    text = scale.render(result)
    assert "1400.0 MiB (limit 1526 MiB = 1.6 GB: met)" in text
    assert "no request more than 1000 ms slower: met." in text
    assert "- model: m.gguf; commit abc\n" in text
    result["build"]["peak_rss_mib"] = 1600.0
    result["slowdown"] = scale.compare([task("open", 4000.0)], [task("open", 2500.0)])
    text = scale.render(result)
    assert "1.6 GB: NOT met" in text and "slower: NOT met." in text
    result["nobuild"]["rerun"] = {"machine": {"load_start": [0.1, 0.1, 0.1]}}
    result["rerun_command"] = "python -m slm_lsp.bench.scale --rerun-quiet"
    assert scale.render(result).endswith(
        "```\npython -m slm_lsp.bench.scale\npython -m slm_lsp.bench.scale --rerun-quiet\n```\n")


def test_index_memory_by_part(tmp_path: Path) -> None:
    from slm_lsp.bench import indexmem

    for i in range(5):
        (tmp_path / f"mod{i}.py").write_text(
            "".join(f"def function_{i}_{j}(value):\n    return value + {j}\n\n\n"
                    for j in range(40)), encoding="utf-8")
    (tmp_path / "locale.po").write_text('msgid "a"\nmsgstr "b"\n', encoding="utf-8")
    result = indexmem.measure(tmp_path)
    assert result["files"] == 5 and result["chunks"] >= 5
    assert result["lexical_postings"] >= result["lexical_terms"] > 40
    assert list(result["parts_mib"]) == ["lexical index", "chunk records", "vector store",
                                         "file table"]
    assert result["rss_built_mib"] > 0
    assert result["save_above_resident_mib"] is not None  # Linux: the peak can be reset
