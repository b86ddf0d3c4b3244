"""FIM family detection and prompt layout."""

from __future__ import annotations

import pytest

from prompts.fim import (
    FAMILIES,
    ContextFile,
    build_fim_prompt,
    detect_family,
    fit_prefix,
    fit_suffix,
)

BY_NAME = {f.name: f for f in FAMILIES}


def vocab_lookup(tokens: dict[str, int]):
    return lambda text: tokens.get(text)


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
def test_each_family_is_detected_from_its_own_tokens(family):
    ids = {family.prefix: 10, family.suffix: 11, family.middle: 12}
    assert detect_family(vocab_lookup(ids)) is family


def test_model_without_fim_tokens_is_not_detected():
    assert detect_family(vocab_lookup({"<|im_start|>": 1, "<|im_end|>": 2})) is None


def test_partial_token_set_is_not_enough():
    qwen = BY_NAME["qwen2.5-coder"]
    assert detect_family(vocab_lookup({qwen.prefix: 1, qwen.suffix: 2})) is None


def test_gguf_metadata_ids_must_agree():
    qwen = BY_NAME["qwen2.5-coder"]
    ids = {qwen.prefix: 1, qwen.suffix: 2, qwen.middle: 3}
    assert detect_family(vocab_lookup(ids), {"fim_pre": 1, "fim_suf": 2, "fim_mid": 3}) is qwen
    assert detect_family(vocab_lookup(ids), {"fim_pre": 7, "fim_suf": 8, "fim_mid": 9}) is None
    # -1 means "not in the metadata": the vocabulary decides.
    assert detect_family(vocab_lookup(ids), {"fim_pre": -1, "fim_suf": -1, "fim_mid": -1}) is qwen


def test_psm_layout_puts_context_first_and_middle_last():
    qwen = BY_NAME["qwen2.5-coder"]
    segs = build_fim_prompt(qwen, "def f():\n    ", "\nprint(f())\n", path="a/b.py",
                            repo_name="repo", context=[ContextFile("c.py", "X = 1")])
    texts = [(s.text, s.special) for s in segs]
    assert texts[0] == ("<|repo_name|>", True)
    assert ("c.py\nX = 1\n", False) in texts
    order = [t for t, special in texts if special]
    assert order == ["<|repo_name|>", "<|file_sep|>", "<|file_sep|>", "<|fim_prefix|>",
                     "<|fim_suffix|>", "<|fim_middle|>"]
    assert texts[-1] == ("<|fim_middle|>", True)
    joined = "".join(t for t, _ in texts)
    assert joined.index("X = 1") < joined.index("a/b.py") < joined.index("def f()")


def test_spm_family_puts_suffix_first():
    codestral = BY_NAME["codestral"]
    segs = build_fim_prompt(codestral, "PRE", "SUF")
    assert [s.text for s in segs] == ["[SUFFIX]", "SUF", "[PREFIX]", "PRE"]


def test_family_without_repo_tokens_gets_context_as_text_before_prefix():
    deepseek = BY_NAME["deepseek-coder"]
    segs = build_fim_prompt(deepseek, "x = ", "", context=[ContextFile("util.py", "def g(): ...")])
    assert segs[0].special and segs[0].text == deepseek.prefix
    assert segs[1].text.startswith("# util.py\ndef g(): ...")
    assert segs[1].text.endswith("x = ")


def count_chars(text: str) -> int:
    return len(text)


def test_fit_prefix_keeps_the_end_and_cuts_at_aligned_line_boundaries():
    text = "".join(f"line {i:03d}\n" for i in range(200))  # 9 chars a line
    out = fit_prefix(text, 500, count_chars, align=32)
    assert len(out) <= 500 and text.endswith(out)
    start_line = 200 - out.count("\n")
    assert start_line % 32 == 0  # the cut moves in steps, so the prompt start is stable
    # Typing on the last line does not move the cut.
    assert fit_prefix(text + "abc", 503, count_chars, align=32).startswith(out[:20])


def test_fit_suffix_keeps_whole_lines_from_the_start():
    text = "".join(f"s{i}\n" for i in range(100))
    out = fit_suffix(text, 20, count_chars)
    assert text.startswith(out) and out.endswith("\n") and len(out) <= 20
    assert fit_suffix(text, 0, count_chars) == ""
    assert fit_suffix("short", 100, count_chars) == "short"


def test_fit_suffix_ends_on_an_aligned_document_line_that_stays_put():
    doc = [f"row {i:03d}\n" for i in range(300)]  # 8 chars a line

    def suffix_from(line: int) -> str:
        return fit_suffix("".join(doc[line:]), 400, count_chars, first_line=line, align=16)

    ends = set()
    for cursor in range(100, 110):  # the cursor moves down a few lines
        out = suffix_from(cursor)
        assert len(out) <= 400
        end_line = cursor + out.count("\n")
        assert end_line % 16 == 0
        ends.add(end_line)
    assert len(ends) == 1  # the end of the prompt did not move


def test_the_suffix_keeps_its_end_while_the_cursor_moves_down_a_little() -> None:
    from prompts.fim import keep_suffix_end, suffix_end

    row = 100
    text = "\n" + "\n".join(f"line {i} = {i}" for i in range(row + 1, 300))
    fresh = text[:text.index("line 121")]  # 20 newlines: ends before document line 121

    def kept(previous: int | None, budget: int = 300) -> str:
        return keep_suffix_end(text, fresh, budget, len, first_line=row, previous_end=previous)

    assert suffix_end(fresh, row) == 121
    assert suffix_end(kept(116), row) == 116, "the previous end is kept"
    assert fresh.startswith(kept(116))
    assert kept(105) == fresh, "under half the budget now: a fresh cut"
    assert kept(None) == fresh and kept(row) == fresh
    assert kept(140, budget=len(fresh) + 5) == fresh, "never over the budget"
    assert suffix_end(kept(140, budget=1000), row) == 140


def test_fit_prefix_and_suffix_narrowed_to_a_window_cut_where_the_whole_text_cuts(monkeypatch):
    import random

    import prompts.fim as fim

    def whole(fn, *args, **kwargs):
        monkeypatch.setattr(fim, "WINDOW_CHARS_PER_TOKEN", 10**9)  # never narrowed
        try:
            return fn(*args, **kwargs)
        finally:
            monkeypatch.setattr(fim, "WINDOW_CHARS_PER_TOKEN", 2)

    def tokens(text: str) -> int:
        return len(text) // 3 + text.count("\n")

    monkeypatch.setattr(fim, "WINDOW_CHARS_PER_TOKEN", 2)  # windows even in short texts
    rng = random.Random(3)
    for _ in range(2000):
        text = "".join(rng.choice(["a", "bb", "cccccc", "\n", "\n"]) for _ in range(rng.randint(0, 300)))
        budget, align, first = rng.randint(1, 60), rng.choice([1, 3, 8]), rng.randint(0, 40)
        assert fim.fit_prefix(text, budget, tokens, align) == whole(
            fim.fit_prefix, text, budget, tokens, align), (text, budget, align)
        assert fim.fit_suffix(text, budget, tokens, first_line=first, align=align) == whole(
            fim.fit_suffix, text, budget, tokens, first_line=first, align=align), (text, budget)


def test_fit_prefix_of_a_huge_text_counts_only_a_window():
    counted: list[int] = []

    def tokens(text: str) -> int:
        counted.append(len(text))
        return len(text) // 4

    text = "value = compute(value)\n" * 400_000  # 9 MB
    out = fit_prefix(text, 1536, tokens)
    assert text.endswith(out) and tokens(out) <= 1536
    assert max(counted) < 1536 * 17 + 100, max(counted)  # never the whole 9 MB
