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
