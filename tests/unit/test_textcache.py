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


def test_older_versions_of_a_document_go_when_newer_ones_come() -> None:
    calls: list[str] = []

    @text_cache(maxsize=100, max_chars=10**6, versions=2)
    def length(text: str, path: str) -> int:
        calls.append(text)
        return len(text)

    length("other", "/b.py")
    for version in range(50):  # a file typed into
        length("x" * version, "/a.py")
    kept = len("x" * 48) + len("x" * 49) + 2 * len("/a.py") + len("other") + len("/b.py")
    assert length.cache_chars() == kept  # type: ignore[attr-defined]
    length("x" * 49, "/a.py"), length("other", "/b.py")  # the newest and the other file: hits
    assert calls.count("x" * 49) == 1 and calls.count("other") == 1
    length("x" * 10, "/a.py")  # an old version is computed again
    assert calls.count("x" * 10) == 2
    for n in range(200):  # least recently used entries still go first
        length(str(n), f"/{n}.py")
    assert length.cache_chars() <= sum(len(str(n)) + len(f"/{n}.py") for n in range(100, 200))  # type: ignore[attr-defined]
    length.cache_clear()  # type: ignore[attr-defined]
    assert length.cache_chars() == 0  # type: ignore[attr-defined]


def test_the_definitions_a_source_tree_keeps_are_those_of_the_latest_versions() -> None:
    from slm_lsp.symbols import tree as tree_module

    tree = tree_module.SourceTree(None)
    body = "".join(f"def f{i}(x):\n    return x + {i}\n\n" for i in range(2000))  # ~60 KB
    first = tree.definitions_in("/w/a.py", body)
    other = tree.definitions_in("/w/b.py", body)
    assert len(first) == 2000 and tree.definitions_in("/w/a.py", body) is first  # kept
    for version in range(200):  # a file typed into: a new text per keystroke
        tree.definitions_in("/w/a.py", body + f"x = {version}\n")
    kept = tree._parsed.cache_chars()  # type: ignore[attr-defined]
    assert 3 * len(body) < kept < 3 * len(body) + 100  # two versions of a.py, and b.py
    assert tree.definitions_in("/w/b.py", body) is other
