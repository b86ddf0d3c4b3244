"""Tree-sitter symbol lookup: the identifier under the cursor, definitions, calls, doc sites."""

from __future__ import annotations

from pathlib import Path

import pytest

from slm_lsp.symbols import SourceTree, calls_in, definitions, doc_site, symbol_at

PY = '''import os


class Store(Base):
    """Keeps things."""

    def __init__(self, root):
        self.root = root

    @property
    def size(
        self,
        deep: bool = False,
    ) -> int:
        return count(os.path.join(self.root, "x"))


def count(path):
    s = Store(path)
    return s.size + helper(path)
'''

CASES = {
    "javascript": ("function add(a, b) { return helper(a) + b; }\n"
                   "class Foo {\n  run(x) { return this.step(x); }\n}\n",
                   (2, 24), "step", "this", True),
    "typescript": ("export class Sq {\n  area(): number { return this.side(2); }\n}\n"
                   "function f<T>(x: T): T { return x; }\n",
                   (1, 32), "side", "this", True),
    "go": ("package m\n\nfunc Add(a, b int) int { return helper(a) + b }\n\n"
           "func (s *Server) Run() error { return s.loop() }\n",
           (4, 40), "loop", "s", True),
    "rust": ("pub fn add(a: i32) -> i32 { helper(a) }\n"
             "impl Server {\n    pub fn run(&self) { self.step(); }\n}\n",
             (2, 30), "step", "self", True),
    "java": ("class A {\n  int add(int a) { return helper(a); }\n"
             "  void go() { obj.call(1); }\n}\n",
             (2, 18), "call", "obj", True),
    "c": ("static int add(int a) { return helper(a); }\nint proto(char *s);\n",
          (0, 33), "helper", None, True),
    "cpp": ("namespace ns {\nclass Foo {\n  int bar(int x) { return obj.baz(x); }\n};\n"
            "int Foo::qux(int y) { return y; }\n}\n",
            (2, 31), "baz", "obj", True),
}


@pytest.mark.parametrize("language", sorted(CASES))
def test_call_site_under_cursor_per_language(language):
    text, (line, col), name, qualifier, called = CASES[language]
    ref = symbol_at(text, language, line, col)
    assert ref is not None, language
    assert (ref.name, ref.qualifier, ref.called) == (name, qualifier, called)
    assert text.split("\n")[line][ref.start:ref.end] == name


EXPECTED_DEFS = {
    "javascript": {"add": "function", "Foo": "class", "Foo.run": "method"},
    "typescript": {"Sq": "class", "Sq.area": "method", "f": "function"},
    "go": {"Add": "function", "Server.Run": "method"},
    "rust": {"add": "function", "Server.run": "method"},
    "java": {"A": "class", "A.add": "method", "A.go": "method"},
    "c": {"add": "function", "proto": "function"},
    "cpp": {"ns.Foo": "class", "ns.Foo.bar": "method", "ns.Foo.qux": "method"},
}


@pytest.mark.parametrize("language", sorted(CASES))
def test_definitions_per_language(language):
    found = {d.qualname: d.kind for d in definitions(CASES[language][0], language, "f")}
    assert found == EXPECTED_DEFS[language]


def test_python_definitions_signatures_and_attributes():
    defs = {d.qualname: d for d in definitions(PY, "python", "/r/store.py")}
    assert set(defs) == {"Store", "Store.__init__", "Store.root", "Store.size", "count"}
    assert defs["Store"].signature == "class Store(Base)"
    assert defs["Store.size"].signature == "@property\ndef size(self, deep: bool = False) -> int"
    assert defs["Store.size"].line == 10 and defs["Store.size"].start_line == 9
    assert defs["Store.root"].kind == "attribute"
    assert defs["count"].text.startswith("def count(path):")


def test_a_comment_before_the_body_is_not_part_of_the_signature():
    source = "def load(path: str) -> bytes:\n    # the file may be large\n    return b''\n"
    (d,) = definitions(source, "python", "/r/io.py")
    assert d.signature == "def load(path: str) -> bytes"


def test_python_refs_calls_attributes_and_definitions():
    assert symbol_at(PY, "python", 14, 41).qualifier == "self"  # self.root
    join = symbol_at(PY, "python", 14, 31)
    assert (join.name, join.qualifier, join.called) == ("join", "os.path", True)
    size = symbol_at(PY, "python", 19, 15)
    assert (size.name, size.qualifier, size.called) == ("size", "s", False)
    on_def = symbol_at(PY, "python", 10, 9)
    assert on_def.name == "size" and on_def.is_definition
    assert symbol_at(PY, "python", 4, 8) is None  # inside a docstring
    assert symbol_at(PY, "python", 2, 0) is None  # blank line
    assert symbol_at(PY, "python", 17, 9).name == "count"  # just after the word


def test_calls_in_a_definition():
    d = next(d for d in definitions(PY, "python", "p") if d.name == "count")
    assert calls_in(PY, "python", d.start_byte, d.end_byte) == ["Store", "helper"]
    size = next(d for d in definitions(PY, "python", "p") if d.name == "size")
    assert calls_in(PY, "python", size.start_byte, size.end_byte) == ["count", "join"]


def test_unknown_language_has_no_symbols():
    assert symbol_at("x = 1", None, 0, 0) is None
    assert definitions("x = 1", "cobol") == []


def test_source_tree_finds_definitions_across_files_and_prefers_open_documents(tmp_path):
    (tmp_path / "a.py").write_text(PY)
    (tmp_path / "b.py").write_text("def helper(p):\n    return p\n")
    (tmp_path / "ignored").mkdir()
    (tmp_path / ".gitignore").write_text("ignored/\n")
    (tmp_path / "ignored" / "c.py").write_text("def helper():\n    pass\n")
    docs: dict[str, str] = {}
    tree = SourceTree(str(tmp_path), open_docs=lambda: docs, rescan_s=0)
    found = tree.find("helper")
    assert [(Path(d.path).name, d.line) for d in found] == [("b.py", 0)]
    docs[str(tmp_path / "b.py")] = "\n\ndef helper(p, q):\n    return p\n"
    assert [d.line for d in tree.find("helper")] == [2]
    assert tree.has_word("count") and not tree.has_word("no_such_name_anywhere")


def test_source_tree_rereads_changed_files(tmp_path):
    file = tmp_path / "m.py"
    file.write_text("def one():\n    pass\n")
    tree = SourceTree(str(tmp_path), rescan_s=0)
    assert [d.name for d in tree.find("one")] == ["one"]
    file.write_text("def two():\n    pass\n\n\ndef three():\n    pass\n")
    import os

    os.utime(file, ns=(1, 10**18))
    assert tree.find("one") == [] and [d.line for d in tree.find("three")] == [4]


def test_source_tree_uses_the_index_listing_and_hits(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "m.py").write_text("def target():\n    pass\n")

    class Chunk:
        path, symbol = "pkg/m.py", "target"

    class Hit:
        chunk = Chunk()

    class Index:
        def files(self):
            return ["pkg/m.py"]

        def search(self, query, k=8, budget_ms=None):
            return [Hit()] if query == "target" else []

    tree = SourceTree(str(tmp_path), index=Index)
    assert tree.list_files() == [str(tmp_path / "pkg" / "m.py")]
    assert [d.name for d in tree.find("target")] == ["target"]
    (tmp_path / "pkg" / "z.py").write_text("def other():\n    target()\n")
    capped = SourceTree(str(tmp_path), index=Index, max_files=0)  # too big to scan: ask the index
    assert capped.list_files() == []
    assert [d.name for d in capped.find("target")] == ["target"]


DOC_CASES = {
    # language: (source, definition name, expected line, indent, style, has_doc)
    "python": ("class K:\n    def m(self, a, *args, b=2, **kw):\n        return a\n", "m", 2,
               "        ", "python", False),
    "javascript": ("class A {\n  @dec\n  run(x) { return x; }\n}\n", "run", 1, "  ", "jsdoc", False),
    "typescript": ("export function f(a: number): number {\n  return a;\n}\n", "f", 0, "", "jsdoc",
                   False),
    "go": ("package m\n\n// Add adds.\nfunc Add(a, b int) int { return a + b }\n\n"
           "func Sub(a int) int {\n\treturn a\n}\n", "Sub", 5, "", "go", False),
    "rust": ("impl S {\n    #[inline]\n    pub fn run(&self, n: u8) {}\n}\n", "run", 1, "    ",
             "rust", False),
    "java": ("class A {\n  @Override\n  public int add(int a) { return a; }\n}\n", "add", 1, "  ",
             "javadoc", False),
    "c": ("/* existing */\nint add(int a, int b) { return a + b; }\n", "add", 1, "", "c", True),
    "cpp": ("template <typename T>\nT id(T x) { return x; }\n", "id", 0, "", "c", False),
}


@pytest.mark.parametrize("language", sorted(DOC_CASES))
def test_doc_site_per_language(language):
    text, name, line, indent, style, has_doc = DOC_CASES[language]
    d = next(d for d in definitions(text, language, "f") if d.name == name)
    site = doc_site(text, d)
    assert site is not None
    assert (site.line, site.indent, site.style, site.has_doc) == (line, indent, style, has_doc)


def test_doc_site_parameters_and_existing_docstrings():
    text = DOC_CASES["python"][0]
    m = next(d for d in definitions(text, "python", "f") if d.name == "m")
    assert doc_site(text, m).params == ("a", "*args", "b", "**kw")
    store = next(d for d in definitions(PY, "python", "f") if d.name == "Store")
    assert doc_site(PY, store).has_doc
    one_liner = "def one(): return 1\n"
    assert doc_site(one_liner, definitions(one_liner, "python", "f")[0]) is None
