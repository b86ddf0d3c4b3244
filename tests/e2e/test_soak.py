"""Five minutes of the soak benchmark (`python -m slm_lsp.bench.soak`, an hour on the
whole dev set in bench/soak.md): the real server, model and index on a copy of attrs (the
smallest dev-set package: while the script edits, the first build of all three takes ten
minutes), edited by the seeded script; no growth of memory, threads or descriptors.

The script runs for about seven minutes: through the first build (about two and a half), a
30 s warm-up, a rest, three minutes of editing and a rest; the ends of the two rests are
compared. Explanation contexts are freed after 10 s here (60 s by default), so a rest takes
40 s."""

from __future__ import annotations

from pathlib import Path

import pytest

from slm_lsp.bench import soak

pytestmark = [pytest.mark.model, pytest.mark.embedder, pytest.mark.slow]


def test_five_minutes_of_editing_leak_nothing(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    result = soak.run(minutes=3.0, warmup_s=30.0, sample_s=2.0, seed=1, devset=None, log=log,
                      only="attrs", release_s=10)
    print({key: result[key] for key in ("build_ended_s", "actions", "requests", "growth")})
    assert result["alive"], f"the server died; see {log}"
    requests = result["requests"]
    assert requests.get("error", 0) == 0, result["errors"]
    # Most keystroke requests are superseded by the next keystroke and cancelled; the rest
    # are answered (29 in a run here, 4 of them with a suggestion).
    assert requests.get("answered", 0) + requests.get("empty", 0) >= 15, requests
    assert requests.get("answered", 0) >= 1, requests
    assert requests.get("hover answered", 0) >= 3, requests
    actions = result["actions"]
    assert all(actions.get(name, 0) >= 2 for name in soak.ACTIONS), actions
    assert result["index"] and "files" in result["index"][0], result["index"]
    # the server's slm.memory command answered the sampler: the C heap is in the samples
    assert all(s["heap_in_use_mib"] for s in result["samples"][-10:]), result["samples"][-10:]
    growth = result["growth"]
    for window in ("first_window_s", "last_window_s"):  # the ends of the two rests
        start, end = growth[window]
        assert end - start == pytest.approx(soak.REST_WINDOW_S, abs=0.2), growth
    assert growth["last_window_s"][1] <= result["samples"][-1]["t"] + 2.5, growth
    assert result["settings"]["explain"] == {"releaseAfterS": 10}
    assert growth["rss_growth_mib"] <= soak.GROWTH_LIMIT_MIB, growth
    assert growth["threads_last_fewest"] <= growth["threads_before_most"], growth
    assert growth["fds_last_fewest"] <= growth["fds_before_most"], growth
