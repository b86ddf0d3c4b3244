"""Region warm-ups with the scripted backend: the engine's plan, the prompt, the scheduler."""

from __future__ import annotations

import asyncio
import time

import pytest
from lsprotocol import types

from prompts.fim import FAMILIES, build_fim_prompt, fit_prefix
from slm_lsp.backends.fake import FakeBackend
from slm_lsp.context import CursorContext
from slm_lsp.engine import CompletionEngine
from slm_lsp.features import build_server, regions
from slm_lsp.server import SlmServer
from slm_lsp.settings import CompletionSettings

URI = "file:///work/long.py"


def source(n: int) -> str:
    """``n`` lines of varied length, like code."""
    return "".join(f"    value_{i} = compute({'x, ' * (i % 7)}{i})\n" for i in range(n))


def engine(backend: FakeBackend | None = None) -> CompletionEngine:
    return CompletionEngine(backend or FakeBackend(can_warm=True), CompletionSettings(),
                            n_ctx=3072)


def cut_line(eng: CompletionEngine, lines: list[str], row: int) -> int:
    """Where the engine's prompt for a cursor after ``row``'s indentation starts."""
    prefix = "".join(lines[:row]) + "    "
    pre, _, _ = eng._budgets()
    return row - fit_prefix(prefix, pre, eng.backend.count_tokens).count("\n")


def test_regions_split_the_document_where_the_prompt_start_changes():
    eng = engine()
    text = source(900)
    lines = text.splitlines(keepends=True)
    plan = eng.warm_regions(text, 0)
    covered = sorted(row for r in plan for row in range(r.first, r.last + 1))
    assert covered == list(range(900))  # every line in exactly one region
    assert len(plan) > 5
    for region in plan:
        for row in range(region.first, region.last + 1):
            assert cut_line(eng, lines, row) == region.anchor, (region, row)
        _, suf, _ = eng._budgets()
        after = "".join(lines[region.last + 1:region.end])
        assert region.end == 900 or eng.backend.count_tokens(after) >= suf


def test_regions_come_nearest_the_cursor_first():
    eng = engine()
    plan = eng.warm_regions(source(900), 500)
    assert plan[0].first <= 500 <= plan[0].last
    distance = [max(r.first - 500, 500 - r.last, 0) for r in plan]
    assert distance == sorted(distance)


def test_a_short_file_is_one_region_and_backends_without_warm_ups_have_none():
    assert [(r.anchor, r.first, r.last, r.end) for r in engine().warm_regions(source(20), 3)] == \
        [(0, 0, 19, 20)]
    assert engine(FakeBackend()).warm_regions(source(900), 0) == []


def test_the_warm_prompt_is_the_prompt_at_the_region_middle_with_a_longer_suffix():
    """Its text before the cursor is what a request after the middle line's indentation
    sends (token healing included); its suffix runs to the region's end, without the
    final middle token."""
    backend = FakeBackend("x", can_warm=True)
    eng = engine(backend)
    text = source(900)
    lines = text.splitlines(keepends=True)
    region = eng.warm_regions(text, 500)[0]
    ctx = CursorContext(uri=URI, path="long.py", language="python", prefix="", suffix=text,
                        line=0, character=0)
    assert eng.warm(ctx, region) > 0
    middle = (region.first + region.last) // 2
    prefix = "".join(lines[:middle]) + "    "
    eng.complete(CursorContext(uri=URI, path="long.py", language="python", prefix=prefix,
                               suffix=text[len(prefix):], line=middle, character=4))
    fam = FAMILIES[0]
    warm_before, warm_after = backend.warmed[0].split(fam.suffix)
    asked_before, asked_after = backend.prompts[-1].split(fam.suffix)
    assert warm_before == asked_before
    assert warm_after == lines[middle][4:] + "".join(lines[middle + 1:region.end])
    assert asked_after.endswith(fam.middle)
    assert warm_after.startswith(asked_after[:-len(fam.middle)])


def test_open_ended_prompts_need_a_prefix_first_family():
    spm = next(f for f in FAMILIES if f.order == "spm")
    with pytest.raises(ValueError, match="suffix first"):
        build_fim_prompt(spm, "a", "b", open_end=True)


# ----- the scheduler --------------------------------------------------------------------


def server(backend: FakeBackend, text: str, warm_regions: int = 3) -> SlmServer:
    from pygls.workspace import Workspace

    ls = build_server(factory=lambda _settings: backend)
    ls.protocol._workspace = Workspace(None)  # type: ignore[attr-defined]
    ls.workspace.put_text_document(
        types.TextDocumentItem(uri=URI, language_id="python", version=1, text=text))
    ls.apply_settings({"completion": {"warmRegions": warm_regions}}, source="test")
    ls.host.configure(ls.settings, force=True).join()  # type: ignore[union-attr]
    return ls


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(regions, "IDLE_S", 0.05)
    monkeypatch.setattr(regions, "POLL_S", 0.01)


async def settle(warmer: regions.RegionWarmer) -> None:
    assert warmer._task is not None
    await asyncio.wait_for(warmer._task, 10)


def test_the_regions_around_the_focus_are_warmed_once_then_the_task_ends():
    backend = FakeBackend(can_warm=True)
    ls = server(backend, source(900))
    warmer: regions.RegionWarmer = ls.extensions["regions"]

    async def run() -> None:
        warmer.touch(URI, 500)
        await settle(warmer)
        assert len(backend.warmed) == 3  # slm.completion.warmRegions
        plan = ls.host.engine().warm_regions(source(900), 500)
        middle = (plan[0].first + plan[0].last) // 2
        assert backend.warmed[0].endswith(
            "".join(source(900).splitlines(True)[middle + 1:plan[0].end]))
        warmer.touch(URI, 500)  # nothing new: no work
        await settle(warmer)
        assert len(backend.warmed) == 3

    asyncio.run(run())


def test_a_request_interrupts_a_warm_up_which_resumes_once_idle():
    backend = FakeBackend(can_warm=True, delay=0.5)
    ls = server(backend, source(900), warm_regions=1)
    warmer: regions.RegionWarmer = ls.extensions["regions"]

    async def run() -> None:
        warmer.touch(URI, 100)
        while not ls.busy():  # the warm-up started
            await asyncio.sleep(0.01)
        started = time.monotonic()
        ls.supersede(URI)  # a request comes in: the warm-up is cancelled
        ls.finished(URI, ls._inflight[URI])
        await settle(warmer)
        assert len(backend.warmed) == 1  # done after the interruption
        assert time.monotonic() - started >= 0.5  # the whole warm-up ran again

    asyncio.run(run())


def test_no_warm_ups_when_off_or_for_a_closed_document():
    backend = FakeBackend(can_warm=True)
    ls = server(backend, source(900), warm_regions=0)
    warmer: regions.RegionWarmer = ls.extensions["regions"]
    warmer.touch(URI, 10)
    assert warmer._task is None
    ls.apply_settings({"completion": {"warmRegions": 2}}, source="test")

    async def run() -> None:
        warmer.touch("file:///work/closed.py", 10)
        await settle(warmer)

    asyncio.run(run())
    assert backend.warmed == []


def test_an_edit_makes_the_regions_due_again():
    backend = FakeBackend(can_warm=True)
    ls = server(backend, source(300), warm_regions=1)
    warmer: regions.RegionWarmer = ls.extensions["regions"]

    async def run() -> None:
        warmer.touch(URI, 10)
        await settle(warmer)
        ls.workspace.put_text_document(types.TextDocumentItem(
            uri=URI, language_id="python", version=2, text="import os\n" + source(300)))
        warmer.touch(URI, 10)
        await settle(warmer)

    asyncio.run(run())
    assert len(backend.warmed) == 2 and "import os" in backend.warmed[1]



def test_requests_in_a_band_and_its_warm_up_ask_retrieval_for_the_same_band():
    """The retriever caches per band, so a warmed band's repository context is the one
    its requests get (the start of the prompt then matches the saved state)."""
    seen: list[int | None] = []

    def retriever(ctx: CursorContext, budget: int) -> tuple[()]:
        seen.append(ctx.band)
        return ()

    backend = FakeBackend("x", can_warm=True)
    eng = CompletionEngine(backend, CompletionSettings(), n_ctx=3072, retriever=retriever,
                           context_tokens=256)
    text = source(900)
    lines = text.splitlines(keepends=True)
    region = eng.warm_regions(text, 500)[0]
    whole = CursorContext(uri=URI, path="long.py", language="python", prefix="", suffix=text,
                          line=0, character=0)
    eng.warm(whole, region)
    for row in (region.first, region.last):
        prefix = "".join(lines[:row]) + "    "
        eng.complete(CursorContext(uri=URI, path="long.py", language="python", prefix=prefix,
                                   suffix=text[len(prefix):], line=row, character=4))
    assert seen == [region.anchor] * 3
