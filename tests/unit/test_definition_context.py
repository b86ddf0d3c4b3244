"""Definition context: imports followed to files, names resolved, stubs packed in a budget."""

from __future__ import annotations

from pathlib import Path

import pytest

from prompts.fim import ContextFile
from slm_lsp.context import CursorContext
from slm_lsp.explain.target import resolve_target
from slm_lsp.repo_context import DefinitionContext, RepoContext
from slm_lsp.symbols import SourceTree, imports_of, resolver_for
from slm_lsp.symbols.imports import module_names, relative_module, script_candidates

PRICING = '''\
"""Prices."""

PRICE_LIST = {"apple": 0.5, "pear": 0.75}
DEFAULT_BOOK = PriceBook()


class PriceBook:
    """Prices by SKU."""

    def get(self, sku: str) -> float:
        """The price of one unit."""
        return PRICE_LIST.get(sku, 0.0)


def unit_price(sku: str) -> float:
    """The list price of one unit; unknown SKUs cost nothing."""
    return PRICE_LIST.get(sku, 0.0)
'''

MODELS = '''\
class Base:
    """Something with a name."""

    def describe(self) -> str:
        return "base"


class Item(Base):
    """One product line."""

    sku: str
    quantity: int = 0

    def __init__(self, sku: str) -> None:
        self.sku = sku
        self.reserved = 0

    def total(self) -> float:
        return 0.0
'''

FILLER = "".join(f"    def helper_{i}(self) -> int:\n        return {i}\n\n" for i in range(40))
SHOP = f'''\
import json

from . import models
from .pricing import PRICE_LIST, unit_price


class Shop:
    """A shop."""

    def __init__(self) -> None:
        self.items: list[models.Item] = []

{FILLER}
    def value(self) -> float:
        total = 0.0
        for item in self.items:
            total += unit_price(item.sku) * item.quantity
        json.dumps(PRICE_LIST)
        return total


def far_away() -> int:
    return 1
'''


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "pricing.py").write_text(PRICING)
    (pkg / "models.py").write_text(MODELS)
    (pkg / "shop.py").write_text(SHOP)
    return tmp_path


def cursor(repo: Path, marker: str) -> tuple[str, str, int]:
    """(path, text, 0-based line) of the line of shop.py holding ``marker``."""
    path = str(repo / "pkg" / "shop.py")
    text = SHOP
    line = next(i for i, t in enumerate(text.split("\n")) if marker in t)
    return path, text, line


def test_python_imports_are_read_from_the_syntax_tree() -> None:
    found = imports_of("from .a.b import c as d\nfrom . import x\nimport os.path as osp\n"
                       "try:\n    import json\nexcept ImportError:\n    pass\n", "python")
    assert [(i.local, i.module, i.name, i.level) for i in found] == [
        ("d", "a.b", "c", 1), ("x", "", "x", 1), ("osp", "os.path", None, 0),
        ("json", "json", None, 0)]
    assert module_names("src/pkg/io/read.py") == ["read", "io.read", "pkg.io.read", "src.pkg.io.read"]
    assert relative_module("pkg/sub/mod.py", 2, "q") == "pkg.q"
    assert script_candidates("src/a/b.ts", "./c", "typescript")[0] == "src/a/c.ts"
    assert script_candidates("src/x.c", "y.h", "c") == ["src/y.h", "y.h"]


def test_a_file_too_large_to_parse_gets_no_definitions_and_costs_little(repo: Path) -> None:
    import time

    from slm_lsp.symbols.syntax import MAX_PARSE_CHARS

    resolver = resolver_for(SourceTree(str(repo)))
    path, text, line = cursor(repo, "total += unit_price")
    assert resolver.around(path, text, "python", line, (line - 10, line + 5))
    huge = text + "x = unit_price\n" * (MAX_PARSE_CHARS // 15 + 1)  # a data dump after the code
    started = time.perf_counter()
    assert resolver.around(path, huge, "python", line, (line - 10, line + 5)) == []
    assert time.perf_counter() - started < 0.05  # its lines are not ranked one by one


def test_names_at_the_cursor_resolve_through_imports_classes_and_bases(repo: Path) -> None:
    resolver = resolver_for(SourceTree(str(repo)))
    path, text, line = cursor(repo, "total += unit_price")
    found = resolver.around(path, text, "python", line, (line - 10, line + 5))
    names = [(f.definition.qualname, f.via) for f in found]
    assert ("unit_price", "import") in names
    assert ("Shop", "enclosing class") in names  # self. in use; its header is far above
    assert ("PRICE_LIST", "import") in names  # a module constant of pricing.py
    assert ("Item", "import") in names  # models.Item, through `from . import models`
    assert ("Base", "base") in names  # Item's base, in models.py
    assert all(f.definition.path != path or f.definition.qualname in ("Shop", "far_away")
               for f in found)
    assert not any(f.definition.qualname == "value" for f in found)  # the prompt shows it
    nearest = [f.distance for f in found]
    assert nearest[0] == 0


def test_a_workspace_opened_through_a_symlink_resolves_its_imports(repo: Path) -> None:
    """The walker resolves symlinks; the editor names files under the root it opened. The
    listing must use the editor's root, or imports find no file and the open document's
    own file is listed a second time under its real path."""
    link = repo.parent / f"{repo.name}-link"  # beside the repository, not inside it
    link.symlink_to(repo, target_is_directory=True)
    tree = SourceTree(str(link))
    assert all(p.startswith(str(link)) for p in tree.list_files())
    resolver = resolver_for(tree)
    path, text, line = cursor(link, "total += unit_price")
    found = resolver.around(path, text, "python", line, (line - 10, line + 5))
    names = [(f.definition.qualname, f.via, f.definition.path) for f in found]
    assert ("unit_price", "import", str(link / "pkg" / "pricing.py")) in names
    assert ("Item", "import", str(link / "pkg" / "models.py")) in names
    assert all(p.startswith(str(link)) for *_, p in names)


def test_names_the_prompt_does_not_show_rank_by_where_they_are_used(tmp_path: Path) -> None:
    """Among a long file's names that the window does not show, the one used elsewhere in
    code like the cursor's comes first, not the one used nearest."""
    (tmp_path / "errors.py").write_text(
        "class UsageError(Exception):\n    def __init__(self, message, ctx=None): ...\n\n\n"
        "class Abort(Exception): ...\n")
    far = "".join(f"def filler_{i}():\n    return {i}\n\n\n" for i in range(60))
    text = ("from .errors import UsageError, Abort\n\n\n"
            "def check(ctx, message):\n    if ctx.bad_option(message):\n"
            "        raise UsageError(message, ctx)\n\n\n"
            f"{far}"
            "def stop():\n    raise Abort()\n\n\n"
            f"{far.replace('filler', 'more')}"
            "def run(ctx, message):\n    if ctx.bad_option(message):\n        raise ")
    (tmp_path / "cli.py").write_text(text)
    resolver = resolver_for(SourceTree(str(tmp_path)))
    lines = text.split("\n")
    line = len(lines) - 1
    found = resolver.around(str(tmp_path / "cli.py"), text, "python", line, (line - 3, line))
    names = [f.definition.qualname for f in found]
    assert names.index("UsageError") < names.index("Abort")  # Abort is used nearer


def test_lookup_never_guesses_a_namesake(repo: Path) -> None:
    resolver = resolver_for(SourceTree(str(repo)))
    path, text, _ = cursor(repo, "json.dumps")
    assert resolver.lookup(path, text, "python", "get", "PRICE_LIST") == []  # a dict's get
    assert resolver.lookup(path, text, "python", "dumps", "json") == []  # not the repository's
    assert [d.qualname for d in resolver.lookup(path, text, "python", "Item", "models") or []] \
        == ["Item"]
    assert [d.qualname for d in resolver.lookup(path, text, "python", "unit_price", None) or []] \
        == ["unit_price"]
    assert resolver.lookup(path, text, "python", "count", "self") is None  # ranked by the caller
    pricing = str(repo / "pkg" / "pricing.py")
    book = resolver.lookup(pricing, PRICING, "python", "get", "DEFAULT_BOOK") or []
    assert [d.qualname for d in book] == ["PriceBook.get"]  # a constant made by a class


def test_hover_on_a_dict_method_names_no_repository_method(repo: Path) -> None:
    tree = SourceTree(str(repo))
    pricing = str(repo / "pkg" / "pricing.py")
    row = next(i for i, t in enumerate(PRICING.split("\n")) if "return PRICE_LIST.get" in t)
    col = PRICING.split("\n")[row].index("get(") + 1
    target = resolve_target(tree, pricing, PRICING, "python", row, col)
    assert target is not None and target.ref.name == "get"
    assert target.definition is None  # was PriceBook.get, matched by name


def count(text: str) -> int:
    return len(text) // 4 + 1


def ctx_at(repo: Path, marker: str, band: int) -> CursorContext:
    path, text, line = cursor(repo, marker)
    lines = text.split("\n")
    offset = sum(len(x) + 1 for x in lines[:line]) + len(lines[line]) - len(lines[line].lstrip())
    return CursorContext(uri=Path(path).as_uri(), path="pkg/shop.py", language="python",
                         prefix=text[:offset], suffix=text[offset:], line=line,
                         character=offset, band=band)


def test_stubs_fit_the_budget_and_stay_the_same_within_a_band(repo: Path) -> None:
    definitions = DefinitionContext(resolver_for(SourceTree(str(repo))), count)
    ctx = ctx_at(repo, "total += unit_price", band=ctx_at(repo, "total +=", 0).line - 10)
    files, used = definitions(ctx, 400)
    assert files and used <= 400
    assert sum(count(f.text) + count(f.path + "\n") + 4 for f in files) <= 400 + 8 * len(files)
    text = "".join(f.text for f in files)
    assert "def unit_price(sku: str) -> float:" in text
    assert "return PRICE_LIST.get" not in text  # signatures and docstrings, no bodies
    assert files[-1].path == "pkg/shop.py"  # the most relevant (the enclosing class) last
    again = definitions(ctx, 400)
    assert again is definitions(ctx, 400) and definitions.stats.hits == 2
    small, used_small = definitions(ctx, 60)
    assert used_small <= 60 and len("".join(f.text for f in small)) < len(text)


def test_modes_choose_definitions_similar_chunks_or_both(repo: Path) -> None:
    definitions = DefinitionContext(resolver_for(SourceTree(str(repo))), count)
    asked: list[int] = []

    def similar(ctx: CursorContext, budget: int) -> tuple[ContextFile, ...]:
        asked.append(budget)
        return (ContextFile("other.py", "x = 1\n"),)

    ctx = ctx_at(repo, "total += unit_price", band=0)
    both = RepoContext(definitions, similar, "both")  # type: ignore[arg-type]
    files = both(ctx, 512)
    _, used = definitions(ctx, 512)
    assert files[0].path == "other.py" and asked == [512 - used]
    assert RepoContext(definitions, similar, "definitions")(ctx, 512)[0].path != "other.py"  # type: ignore[arg-type]
    assert [f.path for f in RepoContext(definitions, similar, "similar")(ctx, 512)] == ["other.py"]  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        RepoContext(definitions, similar, "everything")  # type: ignore[arg-type]


def test_crossfile_targets_cut_at_a_name_the_prompt_does_not_show() -> None:
    from slm_lsp.bench.targets import imported_from_repository, select_crossfile_targets

    filler = "\n".join(f"    value_{i} = {i}" for i in range(900))  # > the 1,536-token window
    files = {
        "pkg/__init__.py": "",
        "pkg/pricing.py": PRICING,
        "pkg/use.py": ("from .pricing import unit_price\nimport json\n\n\ndef far() -> int:\n"
                       f"    return 1\n\n\ndef main() -> None:\n{filler}\n"
                       "    total = unit_price('apple') + far()\n"
                       "    json.dumps(total)\n" + filler[:5000] +
                       "\n    near = unit_price('pear')\n"),
    }
    assert imported_from_repository(files, "pkg/use.py") == {"unit_price": "pkg/pricing.py"}
    targets = select_crossfile_targets(files, 10, seed=0)
    lines = files["pkg/use.py"].split("\n")
    keys = {t.key: t for t in targets}
    row = lines.index("    total = unit_price('apple') + far()")
    first = keys[f"pkg/use.py:{row + 1}"]
    assert first.text[first.column:].startswith("unit_price(")  # cut at the imported name
    assert not any("json.dumps" in t.text for t in targets)  # json is not the repository's
    assert not any("near = " in t.text for t in targets)  # unit_price is shown above
    assert targets == select_crossfile_targets(files, 10, seed=0)


def test_go_names_resolve_by_definition_and_js_imports_by_file(tmp_path: Path) -> None:
    (tmp_path / "server.go").write_text(
        "package web\n\n// NewServer makes a server.\nfunc NewServer(addr string) *Server {\n"
        "\treturn &Server{addr: addr}\n}\n\ntype Server struct {\n\taddr string\n}\n")
    main = ("package web\n\nfunc run() {\n" + "\tx := 1\n" * 80 + "\ts := NewServer(\":80\")\n"
            "\t_ = s\n}\n")
    (tmp_path / "main.go").write_text(main)
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "price.ts").write_text(
        "export function unitPrice(sku: string): number {\n  return 0;\n}\n")
    app = "import { unitPrice } from './lib/price';\n\n" + "const a = 1;\n" * 80 + \
        "function total(): number {\n  return unitPrice('x');\n}\n"
    (tmp_path / "app.ts").write_text(app)
    resolver = resolver_for(SourceTree(str(tmp_path)))
    row = main.split("\n").index("\ts := NewServer(\":80\")")
    found = resolver.around(str(tmp_path / "main.go"), main, "go", row, (row - 5, row + 5))
    assert ("NewServer", "by name") in [(f.definition.name, f.via) for f in found]
    row = app.split("\n").index("  return unitPrice('x');")
    found = resolver.around(str(tmp_path / "app.ts"), app, "typescript", row, (row - 5, row + 5))
    assert [(f.definition.name, f.via) for f in found][:1] == [("unitPrice", "import")]


def test_a_files_name_rows_kept_between_requests_rank_as_counted_afresh() -> None:
    import random

    from slm_lsp.symbols import resolve

    lines = PRICING.split("\n") * 6
    rng = random.Random(5)
    kept_once = False
    for step in range(60):
        lines = list(lines)
        row = rng.randrange(len(lines))
        if step % 10 == 9:  # a line break: another count of lines, counted afresh
            lines.insert(row, "    total = unit_price(sku) + PRICE_LIST.get(sku)")
        else:  # typing along a line, or a line emptied to its indentation
            lines[row] = rng.choice(["    DEFAULT_BOOK.get(sku)", "    ", lines[row] + " + unit_price"])
        imported = {"pricing"} if step % 20 < 15 else {"pricing", "DEFAULT_BOOK"}
        window = (max(0, row - 30), row + 10)
        kept = resolve._names_by_priority(lines, row, window, imported, key="pricing.py")
        assert kept == resolve._names_by_priority(lines, row, window, imported)
        kept_once |= resolve._ROWS["pricing.py"].lines is lines and step % 10 != 9
    assert kept_once and len(resolve._ROWS) <= resolve.ROW_FILES
