"""Cursor splitting and settings parsing."""

from __future__ import annotations

import pytest

from slm_lsp.context import split_at, utf16_to_index
from slm_lsp.settings import Settings, describe, parse_settings


def test_split_at_line_and_column():
    assert split_at("ab\ncd\n", 1, 1) == ("ab\nc", "d\n")
    assert split_at("ab\ncd", 0, 0) == ("", "ab\ncd")


def test_split_clamps_column_past_line_end_like_lsp_says():
    assert split_at("ab\ncd", 0, 99) == ("ab", "\ncd")


def test_split_rejects_line_outside_document():
    with pytest.raises(ValueError, match="outside the document"):
        split_at("ab\ncd", 5, 0)
    with pytest.raises(ValueError):
        split_at("ab", -1, 0)


def test_utf16_columns_count_astral_characters_twice():
    line = "a😀b"
    assert utf16_to_index(line, 1) == 1
    assert utf16_to_index(line, 3) == 2  # after the emoji (2 UTF-16 units)


def test_defaults_when_nothing_is_given():
    settings, problems = parse_settings(None)
    assert settings == Settings() and problems == []


def test_camel_case_keys_are_parsed_into_nested_dataclasses():
    settings, problems = parse_settings(
        {"model": {"path": "/m.gguf", "threads": 3}, "completion": {"maxTokens": 12, "maxLines": 2}}
    )
    assert problems == []
    assert settings.model.path == "/m.gguf" and settings.model.threads == 3
    assert settings.completion.max_tokens == 12 and settings.completion.max_lines == 2


def test_bad_values_fall_back_to_defaults_with_a_message():
    settings, problems = parse_settings(
        {"completion": {"maxTokens": "many", "maxLines": -3, "enabled": 1}, "bogus": True,
         "model": 5}
    )
    default = Settings()
    assert settings.completion.max_tokens == default.completion.max_tokens
    assert settings.completion.max_lines == default.completion.max_lines
    assert settings.completion.enabled is True
    assert settings.model == default.model
    joined = "\n".join(problems)
    for needle in ("maxTokens", "maxLines", "enabled", "bogus", "slm.model"):
        assert needle in joined
    assert len(problems) == 5


def test_every_setting_has_a_docstring_and_a_wire_key():
    rows = describe()
    assert len(rows) >= 15
    for row in rows:
        assert row.doc, f"{row.key} has no docstring"
        assert row.key.startswith("slm.") and "_" not in row.key


def _split_by_lines(text: str, line: int, character: int) -> tuple[str, str] | None:
    """What split_at must give, computed the plain way (None: outside the document)."""
    lines = text.split("\n")
    if not 0 <= line < len(lines):
        return None
    offset = sum(len(x) + 1 for x in lines[:line]) + utf16_to_index(lines[line], character)
    return text[:offset], text[offset:]


def test_split_at_matches_splitting_into_lines_across_block_edges(monkeypatch):
    import random

    import slm_lsp.context as context

    monkeypatch.setattr(context, "LINE_BLOCK", 5)  # many blocks even in short texts
    rng = random.Random(7)
    for _ in range(1500):
        text = "".join(rng.choice(["a", "bc", "\n", "\n", "😀"]) for _ in range(rng.randint(0, 80)))
        for line in range(-1, text.count("\n") + 3):
            column = rng.randint(0, 6)
            try:
                got: tuple[str, str] | None = split_at(text, line, column)
            except ValueError:
                got = None
            assert got == _split_by_lines(text, line, column), (text, line, column)


def test_split_at_does_not_split_a_huge_document_into_lines():
    import tracemalloc

    text = "x = 1\n" * 200_000
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        prefix, suffix = split_at(text, 150_000, 2)
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert prefix.endswith("x ") and suffix.startswith("= 1\n") and len(prefix) == 6 * 150_000 + 2
    assert peak < 1.5 * len(text), peak  # the two halves; 200,000 line strings would be ~10x


def test_the_start_log_level_stays_until_the_editor_sends_one():
    """`serve --log-level debug` is not undone by a configuration without `logLevel`."""
    import logging

    from slm_lsp.features import build_server

    loggers = [logging.getLogger(name) for name in ("slm_lsp", "indexer", "prompts")]
    before = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.DEBUG)
        ls = build_server()
        ls.apply_settings({"completion": {"maxTokens": 12}}, source="test")
        assert [lg.level for lg in loggers] == [logging.DEBUG] * 3
        ls.apply_settings({"logLevel": "warning"}, source="test")
        assert [lg.level for lg in loggers] == [logging.WARNING] * 3
        ls.apply_settings({"logLevel": "loud"}, source="test")  # not a level: the start one
        assert [lg.level for lg in loggers] == [logging.DEBUG] * 3
    finally:
        for lg, level in zip(loggers, before, strict=True):
            lg.setLevel(level)
