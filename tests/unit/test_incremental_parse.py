"""Incremental parsing: a text parsed from a recent tree gives the tree a fresh parse gives."""

from __future__ import annotations

from indexer.languages import get_parser
from slm_lsp.symbols import syntax
from slm_lsp.symbols.definitions import definitions

SOURCE = "\n".join(
    [f"def f{i}(a, b=2):\n    '''Doc {i}.'''\n    return a + b * {i}\n\n" for i in range(200)]
    + ["class K:\n    def __init__(self):\n        self.x = 1\n"])


def fresh(text: str) -> str:
    parser = get_parser("python")
    assert parser is not None
    return str(parser.parse(text.encode("utf-8")).root_node)


def test_an_edited_text_parses_from_the_recent_tree_into_the_fresh_tree(monkeypatch) -> None:
    syntax.parse.cache_clear()  # type: ignore[attr-defined]
    started: list[bool] = []
    original = syntax._edited_tree

    def spy(data: bytes, language: str | None):  # type: ignore[no-untyped-def]
        tree = original(data, language)
        started.append(tree is not None)
        return tree

    monkeypatch.setattr(syntax, "_edited_tree", spy)
    first = syntax.parse(SOURCE, "python")
    assert first is not None and str(first.root_node) == fresh(SOURCE)
    before = str(first.root_node)
    # an edit in the middle: a new function with a non-ASCII name
    cut = SOURCE.index("def f100")
    edited = SOURCE[:cut] + "def größe(x):\n    return [x]\n\n" + SOURCE[cut:]
    tree = syntax.parse(edited, "python")
    assert started[-1] is True, "parsed from the recent tree"
    assert tree is not None and str(tree.root_node) == fresh(edited)
    assert str(first.root_node) == before, "the cached tree of the old text is not changed"
    names = [d.name for d in definitions(edited, "python")]
    assert "größe" in names and "f199" in names and "K" in names
    # a deletion at the very end, and a text unlike any recent one
    shorter = edited[:-20]
    assert str(syntax.parse(shorter, "python").root_node) == fresh(shorter)  # type: ignore[union-attr]
    other = "x = 1\n" * 50
    assert str(syntax.parse(other, "python").root_node) == fresh(other)  # type: ignore[union-attr]
    assert started[-1] is False


def test_common_prefix_and_suffix() -> None:
    assert syntax._common_prefix(b"abcdef", b"abcxef") == 3
    assert syntax._common_suffix(b"abcdef", b"abcxef", 3) == 2
    assert syntax._common_suffix(b"aaaa", b"aaaaaa", 4) == 4
    assert syntax._common_prefix(b"", b"abc") == 0
    assert syntax._point(b"ab\ncd\nef", 7) == (2, 1)


def test_the_kept_trees_are_bounded_by_their_texts() -> None:
    """Trees take about 30 bytes per character: the cache keeps ~1 Mi characters' worth."""
    syntax.parse.cache_clear()  # type: ignore[attr-defined]
    texts = [f"# file {n}\n" + SOURCE * 6 for n in range(16)]  # 16 files of ~73 kB
    trees = [syntax.parse(text, "python") for text in texts]
    assert all(tree is not None for tree in trees)
    kept = syntax.parse.cache_chars()  # type: ignore[attr-defined]
    assert 0 < kept <= syntax.TREE_CHARS < sum(map(len, texts)), kept
    assert syntax.parse(texts[-1], "python") is trees[-1]  # the latest is still there
    syntax.parse.cache_clear()  # type: ignore[attr-defined]
