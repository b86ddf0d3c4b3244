"""The package layout's rules: no import cycles, the product never imports the benchmark,
and the engine layers never import pygls (ARCHITECTURE.md)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("slm_lsp", "indexer", "prompts")


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Every module of ours that ``name`` imports, at any depth of its code."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            subs = {f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules}
            out.update(subs if len(subs) == len(node.names) else subs | {base})
    return {m for m in out if m in modules and m != name}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _cycle_from(start: str, graph: dict[str, set[str]]) -> list[str] | None:
    """A chain of imports from ``start`` back to itself, if there is one."""
    stack, seen = [(start, [start])], set()
    while stack:
        node, chain = stack.pop()
        for nxt in graph[node]:
            if nxt == start:
                return [*chain, start]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, [*chain, nxt]))
    return None


def test_the_graph_sees_the_imports_it_checks() -> None:
    graph = _graph()
    assert "slm_lsp.server" in graph["slm_lsp.features"]
    assert "slm_lsp.bench.cli" in graph["slm_lsp.cli.bench"]  # a function-level import
    assert _cycle_from("a", {"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]


def test_no_module_imports_itself_through_others() -> None:
    graph = _graph()
    cycles = [c for c in (_cycle_from(m, graph) for m in sorted(graph)) if c]
    assert not cycles, cycles[0]


def test_the_product_never_imports_the_benchmark() -> None:
    graph = _graph()
    users = {m for m, deps in graph.items() if not m.startswith("slm_lsp.bench")
             and any(d == "slm_lsp.bench" or d.startswith("slm_lsp.bench.") for d in deps)}
    assert users == {"slm_lsp.cli.bench"}  # the sub-command that hands over to it


def test_only_the_protocol_edge_imports_pygls() -> None:
    edge = ("slm_lsp.features", "slm_lsp.server", "slm_lsp.convert", "slm_lsp.cli", "slm_lsp.bench")
    users = set()
    for name, path in _modules().items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        if any(x == "pygls" or x.startswith("pygls.") for x in names):
            users.add(name)
    assert users and all(u.startswith(edge) for u in users), sorted(users)
