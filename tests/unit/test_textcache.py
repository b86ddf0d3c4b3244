"""The text-bounded cache of the symbol helpers."""

from __future__ import annotations

from slm_lsp.symbols.textcache import text_cache


def test_results_are_reused_and_the_kept_text_stays_within_its_budget() -> None:
    calls: list[str] = []

    @text_cache(maxsize=10, max_chars=100)
    def length(text: str, tag: str) -> int:
        calls.append(text)
        return len(text)

    assert length("a" * 40, "x") == 40 and length("a" * 40, "x") == 40
    assert calls == ["a" * 40]  # the second call was a hit
    length("b" * 40, "x")
    length("c" * 40, "x")  # 40 * 3 + tags > 100: the oldest is dropped
    assert length.cache_chars() <= 100  # type: ignore[attr-defined]
    length("a" * 40, "x")
    assert calls.count("a" * 40) == 2


def test_a_text_longer_than_the_budget_is_computed_every_time_and_never_kept() -> None:
    calls: list[int] = []

    @text_cache(maxsize=10, max_chars=100)
    def length(text: str) -> int:
        calls.append(len(text))
        return len(text)

    length("small")
    assert length("z" * 1000) == 1000 and length("z" * 1000) == 1000
    assert calls == [5, 1000, 1000]
    assert length.cache_chars() == 5  # type: ignore[attr-defined]


def test_no_more_entries_than_maxsize() -> None:
    @text_cache(maxsize=3, max_chars=10**6)
    def echo(text: str) -> str:
        return text

    for n in range(10):
        echo(str(n))
    assert echo.cache_chars() == 3  # type: ignore[attr-defined]


def test_the_definitions_a_source_tree_keeps_are_bounded_by_their_text() -> None:
    from slm_lsp.symbols import tree as tree_module

    tree = tree_module.SourceTree(None)
    body = "".join(f"def f{i}(x):\n    return x + {i}\n\n" for i in range(2000))  # ~60 KB
    first = tree.definitions_in("/w/a.py", body)
    assert len(first) == 2000 and tree.definitions_in("/w/a.py", body) is first  # kept
    for version in range(200):  # a file typed into: a new text per keystroke
        tree.definitions_in("/w/a.py", body + f"x = {version}\n")
    assert tree._parsed.cache_chars() <= tree_module.PARSED_CHARS  # type: ignore[attr-defined]
    assert tree._parsed.cache_chars() > tree_module.PARSED_CHARS - 2 * len(body)  # type: ignore[attr-defined]
