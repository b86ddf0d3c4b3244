"""What a file imports: which local name comes from which module, and which file that is.

Python is read from its syntax tree (``import a.b as c``, ``from .m import x as y``,
``from m import *``); JavaScript/TypeScript relative imports and C/C++ ``#include "..."``
are read from their import lines and resolved to files next to the importer. Other
languages (Go, Rust, Java) name packages rather than files: their imported names are found
through the workspace's definitions by name (see ``resolve``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass

from tree_sitter import Node

from .syntax import node_text, parse


@dataclass(frozen=True)
class Import:
    """One name an import binds in a file."""

    local: str
    """The name bound in the importing file (``*`` for a star import)."""
    module: str
    """The dotted module (Python, without the leading dots) or the import's path string."""
    name: str | None = None
    """The imported member (``from m import name``), None when the module itself is bound."""
    level: int = 0
    """Python: the leading dots of a relative import."""
    line: int = 0


def _dotted(node: Node | None) -> str:
    return node_text(node).replace(" ", "") if node is not None else ""


def _python(root: Node) -> list[Import]:
    found: list[Import] = []
    for stmt in _import_nodes(root):
        line = stmt.start_point[0]
        if stmt.type == "import_statement":
            for item in stmt.children_by_field_name("name"):
                if item.type == "aliased_import":
                    module = _dotted(item.child_by_field_name("name"))
                    found.append(Import(node_text(item.child_by_field_name("alias")), module, line=line))
                else:
                    module = _dotted(item)
                    found.append(Import(module.split(".")[0], module.split(".")[0], line=line))
            continue
        source = stmt.child_by_field_name("module_name")
        level, module = 0, _dotted(source)
        if source is not None and source.type == "relative_import":
            prefix = next((c for c in source.children if c.type == "import_prefix"), None)
            level = len(node_text(prefix)) if prefix is not None else 0
            module = _dotted(next((c for c in source.children if c.type == "dotted_name"), None))
        names = stmt.children_by_field_name("name")
        if not names and any(c.type == "wildcard_import" for c in stmt.children):
            found.append(Import("*", module, "*", level, line))
        for item in names:
            if item.type == "aliased_import":
                name = _dotted(item.child_by_field_name("name"))
                found.append(Import(node_text(item.child_by_field_name("alias")), module, name, level, line))
            else:
                name = _dotted(item)
                found.append(Import(name.split(".")[-1], module, name, level, line))
    return found


def _import_nodes(root: Node) -> Iterable[Node]:
    """Import statements at module level and inside ``if``/``try`` blocks (not in functions)."""
    stack = list(reversed(root.named_children))
    while stack:
        node = stack.pop()
        if node.type in ("import_statement", "import_from_statement"):
            yield node
        elif node.type in ("if_statement", "try_statement", "block", "else_clause",
                           "except_clause", "finally_clause", "elif_clause"):
            stack.extend(reversed(node.named_children))


_JS_IMPORT = re.compile(
    r"""^\s*import\s+(?:type\s+)?(?P<what>[\w*{}\s,$]+?)\s+from\s+['"](?P<src>[^'"]+)['"]"""
    r"""|(?:const|let|var)\s+(?P<req>[\w{}\s,$]+?)\s*=\s*require\(\s*['"](?P<rsrc>[^'"]+)['"]\s*\)""",
    re.M)
_C_INCLUDE = re.compile(r'^\s*#\s*include\s+"(?P<src>[^"]+)"', re.M)


def _js(text: str) -> list[Import]:
    found: list[Import] = []
    for match in _JS_IMPORT.finditer(text):
        what = match.group("what") or match.group("req") or ""
        source = match.group("src") or match.group("rsrc") or ""
        line = text.count("\n", 0, match.start())
        for part in re.split(r"[{},]", what):
            words = part.split()
            if not words or words[0] == "*" and len(words) < 3:
                continue
            local = words[-1]
            name = words[0] if words[0] not in ("*",) else None
            found.append(Import(local, source, name if "{" in what else None, line=line))
    return found


def _c(text: str) -> list[Import]:
    return [Import(os.path.basename(m.group("src")), m.group("src"), line=text.count("\n", 0, m.start()))
            for m in _C_INCLUDE.finditer(text)]


def imports_of(text: str, language: str | None) -> list[Import]:
    """The imports of one file (empty for languages read by name only)."""
    if language == "python":
        tree = parse(text, language)
        return _python(tree.root_node) if tree is not None else []
    if language in ("javascript", "typescript", "tsx"):
        return _js(text)
    if language in ("c", "cpp"):
        return _c(text)
    return []


def module_names(rel: str) -> list[str]:
    """The dotted names a Python file can be imported as: every suffix of its path.

    ``src/pkg/io/read.py`` -> ``read``, ``io.read``, ``pkg.io.read``, ``src.pkg.io.read``;
    a package's ``__init__.py`` is its folder's name.
    """
    parts = rel.replace("\\", "/").split("/")
    if not parts[-1].endswith(".py"):
        return []
    stem = parts[-1][:-3]
    parts = parts[:-1] if stem == "__init__" else parts[:-1] + [stem]
    return [".".join(parts[i:]) for i in range(len(parts) - 1, -1, -1) if parts[i:]]


def relative_module(importer_rel: str, level: int, module: str) -> str:
    """The absolute dotted name of a relative Python import seen from ``importer_rel``."""
    parts = importer_rel.replace("\\", "/").split("/")[:-1]  # the importer's package
    if level > 1:
        parts = parts[:len(parts) - (level - 1)] if level - 1 <= len(parts) else []
    return ".".join([p for p in parts if p] + ([module] if module else []))


def script_candidates(importer_rel: str, source: str, language: str) -> list[str]:
    """Root-relative files a JS/TS import (relative sources only) or a C include may name."""
    here = os.path.dirname(importer_rel)
    if language in ("c", "cpp"):
        return list(dict.fromkeys(os.path.normpath(p).replace("\\", "/")
                                  for p in (os.path.join(here, source), source)))
    if not source.startswith("."):
        return []  # a package from node_modules, not a file of the repository
    base = os.path.normpath(os.path.join(here, source)).replace("\\", "/")
    if os.path.splitext(base)[1] in (".js", ".jsx", ".ts", ".tsx", ".mjs", ".cjs"):
        return [base]
    exts = (".ts", ".tsx", ".js", ".jsx", ".mjs", ".cjs")
    return [base + e for e in exts] + [f"{base}/index{e}" for e in exts]
