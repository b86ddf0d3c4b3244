"""Symbols with tree-sitter: what is under the cursor, where it is defined, what it calls.

``symbol_at`` names the identifier at a position (with its qualifier, such as
``self`` in ``self.run()``, and whether it is called). ``definitions`` lists the
functions, methods, classes and types of a file with their signature and text.
``SourceTree`` finds definitions by name across the workspace: open documents
first, then the repository index when there is one, then the files under the
root (read once, re-read when they change).
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from tree_sitter import Node, Tree

from indexer.languages import get_parser, language_for_path

log = logging.getLogger(__name__)

_KINDS: dict[str, str] = {
    "function_definition": "function", "function_declaration": "function",
    "generator_function_declaration": "function", "function_item": "function",
    "function_signature_item": "function", "function_signature": "function",
    "method_definition": "method", "method_declaration": "method",
    "method_signature": "method", "abstract_method_signature": "method",
    "constructor_declaration": "constructor", "macro_definition": "macro",
    "class_definition": "class", "class_declaration": "class",
    "abstract_class_declaration": "class", "class_specifier": "class",
    "interface_declaration": "interface", "trait_item": "trait",
    "enum_declaration": "enum", "enum_item": "enum", "enum_specifier": "enum",
    "record_declaration": "record", "struct_item": "struct", "struct_specifier": "struct",
    "union_item": "union", "union_specifier": "union", "type_alias_declaration": "type",
    "type_spec": "type", "type_item": "type",
}
"""Definition node types (across our grammars) and the kind shown to the user."""

_FUNCTION_KINDS = frozenset({"function", "method", "constructor", "macro"})
_CONTAINERS = frozenset({
    "class_definition", "class_declaration", "abstract_class_declaration", "class_specifier",
    "struct_specifier", "interface_declaration", "trait_item", "impl_item",
    "namespace_definition", "enum_declaration", "record_declaration",
})
"""Nodes whose name qualifies the definitions inside them (``Class.method``)."""

_WRAPPERS = frozenset({"decorated_definition", "export_statement", "template_declaration"})
_FUNCTION_VALUES = frozenset({"arrow_function", "function_expression", "function",
                              "generator_function"})
_NAME_NODES = frozenset({"identifier", "field_identifier", "property_identifier",
                         "type_identifier", "destructor_name", "operator_name",
                         "shorthand_property_identifier", "private_property_identifier",
                         "namespace_identifier", "constant"})
_SKIP_SUFFIXES = ("expression", "literal", "string", "arguments", "argument_list", "comment")
_SKIP_TYPES = frozenset({"call", "list", "dictionary", "set", "tuple", "array", "object",
                         "initializer_list", "import_statement", "import_from_statement"})
_CALLS: dict[str, str] = {"call": "function", "call_expression": "function",
                          "method_invocation": "name", "new_expression": "constructor",
                          "object_creation_expression": "type", "macro_invocation": "macro"}
_MEMBER: dict[str, tuple[str, str]] = {
    "attribute": ("object", "attribute"), "member_expression": ("object", "property"),
    "selector_expression": ("operand", "field"),
    "field_expression": ("argument", "field"),  # Rust names the object "value"
    "field_access": ("object", "field"), "method_invocation": ("object", "name"),
    "scoped_identifier": ("path", "name"), "qualified_identifier": ("scope", "name"),
}
"""Member-access nodes: (field of the qualifier, field of the member name)."""

WORD_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Definition:
    """A function, method, class or type defined in a file."""

    name: str
    qualname: str
    kind: str
    path: str
    """Absolute file path."""
    language: str
    line: int
    """0-based row of the name."""
    start_line: int
    """0-based first row, decorators and attributes included."""
    end_line: int
    signature: str
    text: str
    start_byte: int = 0
    end_byte: int = 0


@dataclass(frozen=True)
class SymbolRef:
    """The identifier under the cursor."""

    name: str
    line: int
    start: int
    """Code-point column where the identifier starts."""
    end: int
    qualifier: str | None = None
    """What the member was accessed on (``self``, ``Foo``, ``os.path``), if anything."""
    called: bool = False
    is_definition: bool = False
    """The cursor is on the name of a definition."""


# -- parsing ----------------------------------------------------------------------


def _text(node: Node | None) -> str:
    return node.text.decode("utf-8", errors="replace") if node is not None and node.text else ""


def parse(text: str, language: str | None) -> Tree | None:
    """A syntax tree, or None for languages without a grammar here."""
    parser = get_parser(language)
    if parser is None:
        return None
    return parser.parse(text.encode("utf-8"))


def _byte_col(line_text: str, col: int) -> int:
    return len(line_text[:col].encode("utf-8"))


def _char_col(line_bytes: bytes, col: int) -> int:
    return len(line_bytes[:col].decode("utf-8", errors="replace"))


# -- the identifier under the cursor ----------------------------------------------------


def symbol_at(text: str, language: str | None, line: int, col: int) -> SymbolRef | None:
    """The identifier at (line, code-point col), or just before it; None elsewhere."""
    tree = parse(text, language)
    lines = text.split("\n")
    if tree is None or not 0 <= line < len(lines):
        return None
    point = (line, _byte_col(lines[line], col))
    node = tree.root_node.named_descendant_for_point_range(point, point)
    if (node is None or node.type not in _NAME_NODES) and col > 0:  # cursor right after a word
        before = (line, _byte_col(lines[line], col - 1))
        node = tree.root_node.named_descendant_for_point_range(before, before)
    if node is None or node.type not in _NAME_NODES:
        return None
    raw = lines[line].encode("utf-8")
    return SymbolRef(
        name=_text(node), line=line,
        start=_char_col(raw, node.start_point[1]), end=_char_col(raw, node.end_point[1]),
        qualifier=_qualifier(node), called=_is_called(node), is_definition=_names_definition(node),
    )


def _qualifier(node: Node) -> str | None:
    parent = node.parent
    if parent is None or parent.type not in _MEMBER:
        return None
    obj_field, name_field = _MEMBER[parent.type]
    if parent.child_by_field_name(name_field) != node:
        return None
    obj = parent.child_by_field_name(obj_field) or parent.child_by_field_name("value")
    return _text(obj) or None


def _is_called(node: Node) -> bool:
    target = node
    parent = node.parent
    if parent is not None and parent.type in _MEMBER and parent.type != "method_invocation":
        target, parent = parent, parent.parent
    if parent is None or parent.type not in _CALLS:
        return False
    return parent.child_by_field_name(_CALLS[parent.type]) == target or (
        parent.type == "method_invocation" and parent.child_by_field_name("name") == node)


def _names_definition(node: Node) -> bool:
    parent = node.parent
    while parent is not None and parent.type in ("function_declarator", "qualified_identifier",
                                                 "pointer_declarator", "reference_declarator"):
        parent = parent.parent
    if parent is None or (parent.type not in _KINDS and parent.type != "variable_declarator"):
        return False
    return _name_node(parent) == node


# -- definitions in a file ------------------------------------------------------------


def _name_node(node: Node) -> Node | None:
    """The node naming a definition (C-family names hide inside declarators)."""
    name = node.child_by_field_name("name")
    if name is not None:
        return name
    declarator = node.child_by_field_name("declarator")
    while declarator is not None:
        if declarator.type == "qualified_identifier":
            inner = declarator.child_by_field_name("name")
            if inner is not None and inner.type != "qualified_identifier":
                return inner
            declarator = inner
            continue
        if declarator.type in _NAME_NODES:
            return declarator
        declarator = declarator.child_by_field_name("declarator")
    return None


def _c_scope(node: Node) -> str | None:
    """``Foo`` for a C++ definition written ``Foo::bar``."""
    declarator = node.child_by_field_name("declarator")
    while declarator is not None and declarator.type != "qualified_identifier":
        declarator = declarator.child_by_field_name("declarator")
    if declarator is None:
        return None
    scope = declarator.child_by_field_name("scope")
    return _text(scope).replace("::", ".") or None


def _container_name(node: Node) -> str | None:
    if node.type == "impl_item":
        return re.sub(r"<.*", "", _text(node.child_by_field_name("type"))) or None
    name = node.child_by_field_name("name")
    return _text(name) or None


def _go_receiver(node: Node) -> str | None:
    receiver = node.child_by_field_name("receiver")
    if receiver is None:
        return None
    types = [n for n in WORD_RE.findall(_text(receiver))]
    return types[-1] if types else None


def _definition_kind(node: Node) -> str | None:
    """The kind of a definition node, or None if it defines nothing we list."""
    if node.type == "variable_declarator":
        value = node.child_by_field_name("value")
        return "function" if value is not None and value.type in _FUNCTION_VALUES else None
    if node.type == "declaration":  # a C/C++ prototype
        declarator = node.child_by_field_name("declarator")
        return "function" if declarator is not None and declarator.type == "function_declarator" else None
    if node.type in ("struct_specifier", "class_specifier", "enum_specifier", "union_specifier"):
        return _KINDS[node.type] if node.child_by_field_name("body") is not None else None
    return _KINDS.get(node.type)


def _outer(node: Node) -> Node:
    """The node with its decorators, export keyword, template header or declaration."""
    while node.parent is not None and (
        node.parent.type in _WRAPPERS
        or (node.type == "variable_declarator" and node.parent.type in (
            "lexical_declaration", "variable_declaration"))
        or (node.type == "type_spec" and node.parent.type == "type_declaration")
    ):
        node = node.parent
    return node


def _header(node: Node, outer: Node, source: bytes) -> str:
    """The definition's signature: its text up to the body, on one line when short."""
    body = node.child_by_field_name("body")
    if node.type == "variable_declarator":
        value = node.child_by_field_name("value")
        body = value.child_by_field_name("body") if value is not None else None
    start = outer.start_byte if outer.type in ("decorated_definition", "template_declaration",
                                               "export_statement") else node.start_byte
    if node.type in ("type_spec", "variable_declarator") and outer is not node:
        start = outer.start_byte
    end = body.start_byte if body is not None and node.type != "type_spec" else node.end_byte
    header = source[start:end].decode("utf-8", errors="replace")
    return tidy_signature(re.sub(r"\s*(\{|:|=>|=)?\s*$", "", header))


def tidy_signature(header: str) -> str:
    """Whitespace collapsed; decorators on their own lines; long headers keep their breaks."""
    lines = [line for line in header.splitlines() if line.strip()]
    decorators: list[str] = []
    while len(lines) > 1 and lines[0].lstrip().startswith(("@", "#[")):
        decorators.append(lines.pop(0).strip())
    if decorators:
        return "\n".join(decorators + [tidy_signature("\n".join(lines))])
    flat = " ".join(" ".join(line.split()) for line in lines)
    flat = re.sub(r"\(\s+", "(", re.sub(r",?\s+\)", ")", flat))
    if len(flat) <= 160 or len(lines) <= 1:
        return flat
    indent = min(len(line) - len(line.lstrip()) for line in lines[1:]) if len(lines) > 1 else 0
    return "\n".join([lines[0].strip()] + [line[min(indent, 4):].rstrip() if line.startswith(" ")
                                           else line.rstrip() for line in lines[1:]])


def _skip(node: Node) -> bool:
    return node.type in _SKIP_TYPES or node.type.endswith(_SKIP_SUFFIXES)


@dataclass
class _Walk:
    """One pass over a file's tree collecting definitions."""

    path: str
    language: str
    source: bytes
    found: list[Definition] = field(default_factory=list)

    def visit(self, node: Node, scope: list[str], in_class: bool) -> None:
        kind = _definition_kind(node)
        if kind is not None:
            self.add(node, kind, scope, in_class)
        if kind in _FUNCTION_KINDS:
            if self.language == "python" and in_class and kind in ("function", "method"):
                self.python_attributes(node, scope)
            return
        inner, inner_class = scope, in_class
        if node.type in _CONTAINERS:
            name = _container_name(node)
            inner = scope + [name] if name else scope
            inner_class = node.type != "namespace_definition"
        for child in node.named_children:
            if not _skip(child):
                self.visit(child, inner, inner_class)

    def add(self, node: Node, kind: str, scope: list[str], in_class: bool) -> None:
        name_node = _name_node(node)
        name = _text(name_node)
        if not name or name_node is None:
            return
        prefix = list(scope)
        if node.type == "method_declaration" and self.language == "go":
            receiver = _go_receiver(node)
            prefix = [receiver] if receiver else prefix
        c_scope = _c_scope(node) if self.language in ("c", "cpp") else None
        if c_scope:
            prefix = prefix + [c_scope]
        if kind == "function" and (in_class or c_scope or self.language == "go" and len(prefix)):
            kind = "method"
        outer = _outer(node)
        self.found.append(Definition(
            name=name, qualname=".".join(prefix + [name]), kind=kind, path=self.path,
            language=self.language, line=name_node.start_point[0], start_line=outer.start_point[0],
            end_line=outer.end_point[0], signature=_header(node, outer, self.source),
            text=self.source[outer.start_byte - outer.start_point[1]:outer.end_byte].decode(
                "utf-8", errors="replace"),
            start_byte=outer.start_byte, end_byte=outer.end_byte,
        ))

    def python_attributes(self, function: Node, scope: list[str]) -> None:
        """``self.x = ...`` at the top level of a method body: attribute definitions."""
        body = function.child_by_field_name("body")
        for stmt in body.named_children if body is not None else ():
            expr = stmt.named_children[0] if stmt.type == "expression_statement" and \
                stmt.named_children else None
            if expr is None or expr.type != "assignment":
                continue
            left = expr.child_by_field_name("left")
            if left is None or left.type != "attribute" or _text(
                    left.child_by_field_name("object")) != "self":
                continue
            name_node = left.child_by_field_name("attribute")
            name = _text(name_node)
            if name and name_node is not None and not any(
                    d.qualname == ".".join(scope + [name]) for d in self.found):
                self.found.append(Definition(
                    name=name, qualname=".".join(scope + [name]), kind="attribute",
                    path=self.path, language="python", line=stmt.start_point[0],
                    start_line=stmt.start_point[0], end_line=stmt.end_point[0],
                    signature=tidy_signature(_text(stmt))[:160], text=_text(stmt),
                    start_byte=stmt.start_byte, end_byte=stmt.end_byte))


def definitions(text: str, language: str | None, path: str = "") -> list[Definition]:
    """Functions, methods, classes and types of a file (not those nested in functions)."""
    tree = parse(text, language)
    if tree is None or language is None:
        return []
    walk = _Walk(path, language, text.encode("utf-8"))
    walk.visit(tree.root_node, [], False)
    return walk.found


def innermost(defs: Iterable[Definition], line: int, *, functions_only: bool = False
              ) -> Definition | None:
    """The smallest definition spanning ``line``."""
    best: Definition | None = None
    for d in defs:
        if functions_only and d.kind not in _FUNCTION_KINDS:
            continue
        if d.kind == "attribute" or not d.start_line <= line <= d.end_line:
            continue
        if best is None or d.end_line - d.start_line < best.end_line - best.start_line:
            best = d
    return best


def call_sites(text: str, language: str | None, start_byte: int, end_byte: int
               ) -> list[tuple[str, str | None]]:
    """(name, qualifier) of the functions called between two byte offsets, once per name."""
    tree = parse(text, language)
    if tree is None:
        return []
    node = tree.root_node.descendant_for_byte_range(start_byte, max(start_byte, end_byte - 1))
    while node is not None and (node.start_byte > start_byte or node.end_byte < end_byte) \
            and node.parent is not None:
        node = node.parent
    found: dict[str, str | None] = {}
    stack = [node] if node is not None else []
    while stack:
        current = stack.pop()
        if current.type in _CALLS:
            callee = _callee(current)
            if callee is not None:
                found.setdefault(*callee)
        if start_byte <= current.end_byte and current.start_byte <= end_byte:
            stack.extend(reversed(current.named_children))
    return list(found.items())


def calls_in(text: str, language: str | None, start_byte: int, end_byte: int) -> list[str]:
    """Names of the functions called between two byte offsets, in order, once each."""
    return [name for name, _ in call_sites(text, language, start_byte, end_byte)]


def _callee(call: Node) -> tuple[str, str | None] | None:
    target = call.child_by_field_name(_CALLS[call.type])
    qualifier: str | None = None
    if call.type == "method_invocation":
        qualifier = _text(call.child_by_field_name("object")) or None
    while target is not None and target.type in _MEMBER:
        obj = target.child_by_field_name(_MEMBER[target.type][0]) or \
            target.child_by_field_name("value")
        qualifier = _text(obj) or None
        target = target.child_by_field_name(_MEMBER[target.type][1])
    if target is not None and target.type in ("generic_function", "generic_type"):
        target = target.named_children[0] if target.named_children else None
    if target is None or target.type not in _NAME_NODES:
        return None
    return _text(target), qualifier


_IMPORT_LINE = re.compile(r"^\s*(?:import|from|use|using|#\s*include|package)\b.*$", re.M)


def imported_names(text: str) -> set[str]:
    """Identifiers on the file's import lines (module names and their aliases)."""
    return {w for line in _IMPORT_LINE.findall(text) for w in WORD_RE.findall(line)}


# -- the workspace's files -------------------------------------------------------------


@lru_cache(maxsize=32)
def _words(text: str) -> frozenset[str]:
    """The identifiers of an open document's text (cached per text)."""
    return frozenset(WORD_RE.findall(text))


@dataclass
class _FileInfo:
    stamp: tuple[int, int]
    text: str
    words: frozenset[str]
    defs: list[Definition] | None = None


class SourceTree:
    """Source files of a workspace, for looking definitions and names up.

    Open documents win over the file system. Files are listed from the
    repository index when there is one, else by walking the root (ignore
    rules applied), at most every ``rescan_s`` seconds.
    """

    def __init__(self, root: str | None, open_docs: Callable[[], Mapping[str, str]] = dict,
                 index: Callable[[], Any] = lambda: None, *, max_files: int = 5000,
                 rescan_s: float = 5.0) -> None:
        self.root = root
        self._open_docs = open_docs
        self._index = index
        self.max_files = max_files
        self.rescan_s = rescan_s
        self._files: dict[str, _FileInfo] = {}
        self._listing: list[str] = []
        self._listed_at = -1e9
        self._parsed: OrderedDict[tuple[str, str], list[Definition]] = OrderedDict()
        self._lock = threading.RLock()

    # files

    def list_files(self) -> list[str]:
        """Absolute paths of the workspace's source files (tree-sitter languages only)."""
        with self._lock:
            if time.monotonic() - self._listed_at < self.rescan_s:
                return self._listing
            self._listing = self._scan()
            self._listed_at = time.monotonic()
            return self._listing

    def _scan(self) -> list[str]:
        if not self.root:
            return []
        index = self._index()
        paths: Iterable[str]
        try:
            paths = [os.path.join(self.root, rel) for rel in index.files()] if index else []
        except Exception:  # an index that is still loading or broken: walk instead
            log.debug("index file listing failed", exc_info=True)
            paths = []
        if not paths:
            from indexer.walker import Walker

            paths = (str(f.path) for f in Walker(self.root).walk())
        out: list[str] = []
        for path in paths:
            if language_for_path(path) is None:
                continue
            if len(out) >= self.max_files:
                log.info("symbol lookup scans the first %d files (and asks the index)",
                         self.max_files)
                break
            out.append(os.path.abspath(path))
        return out

    def text_of(self, path: str) -> str | None:
        """A file's current text: the open document's, else the file's (None if unreadable)."""
        docs = self._open_docs()
        if path in docs:
            return docs[path]
        info = self._info(path)
        return info.text if info else None

    def _info(self, path: str) -> _FileInfo | None:
        try:
            st = os.stat(path)
        except OSError:
            return None
        stamp = (st.st_mtime_ns, st.st_size)
        with self._lock:
            info = self._files.get(path)
            if info is not None and info.stamp == stamp:
                return info
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None
        info = _FileInfo(stamp, text, frozenset(WORD_RE.findall(text)))
        with self._lock:
            self._files[path] = info
        return info

    # lookups

    def definitions_in(self, path: str, text: str | None = None,
                       language: str | None = None) -> list[Definition]:
        """The definitions of one file (parsed once per version of its text)."""
        if text is None:
            text = self.text_of(path)
        language = language or language_for_path(path)
        if text is None or language is None:
            return []
        key = (path, text)
        with self._lock:
            cached = self._parsed.get(key)
            if cached is not None:
                self._parsed.move_to_end(key)
                return cached
        defs = definitions(text, language, path)
        with self._lock:
            self._parsed[key] = defs
            while len(self._parsed) > 256:
                self._parsed.popitem(last=False)
        return defs

    def files_with(self, word: str, *, definitions: bool = False) -> list[str]:
        """Files (open documents first) in which ``word`` occurs as a whole word.

        For ``definitions`` in a repository too big to scan whole, files whose
        index chunks define ``word`` are added from the repository index.
        """
        docs = dict(self._open_docs())
        found = [p for p, t in docs.items() if word in t and word in _words(t)]
        listing = self.list_files()
        extra = self._index_hits(word) if definitions and len(listing) >= self.max_files else []
        for path in extra + listing:
            if path in docs or path in found:
                continue
            info = self._info(path)
            if info is not None and word in info.words:
                found.append(path)
        return found

    def _index_hits(self, word: str) -> list[str]:
        """Files whose indexed chunks define ``word``, from the repository index."""
        index = self._index()
        if index is None or not self.root:
            return []
        try:
            results = index.search(word, k=8, budget_ms=30)
        except Exception:
            log.debug("index search failed", exc_info=True)
            return []
        return [os.path.join(self.root, r.chunk.path) for r in results
                if r.chunk.symbol and r.chunk.symbol.split(".")[-1] == word]

    def find(self, name: str) -> list[Definition]:
        """Every definition named ``name`` in the workspace."""
        out: list[Definition] = []
        for path in self.files_with(name, definitions=True):
            out += [d for d in self.definitions_in(path) if d.name == name]
        return out

    def has_word(self, word: str) -> bool:
        """True if ``word`` occurs anywhere in the workspace's source files."""
        return bool(self.files_with(word))


# -- where documentation goes --------------------------------------------------------

_DOC_STYLES = {"python": "python", "javascript": "jsdoc", "typescript": "jsdoc", "tsx": "jsdoc",
               "go": "go", "rust": "rust", "java": "javadoc", "c": "c", "cpp": "c"}
_ABOVE = frozenset({"attribute_item", "decorator", "inner_attribute_item"})
"""Siblings that belong to the definition below them (Rust attributes, TS decorators)."""


@dataclass(frozen=True)
class DocSite:
    """Where a definition's documentation comment goes, and in which convention."""

    line: int
    """0-based line the comment is inserted before."""
    indent: str
    style: str
    """python, jsdoc, javadoc, go, rust or c."""
    has_doc: bool
    params: tuple[str, ...] = ()


def _definition_node(tree: Tree, d: Definition) -> Node | None:
    node = tree.root_node.descendant_for_byte_range(d.start_byte, max(d.start_byte, d.end_byte - 1))
    while node is not None and not (node.start_byte <= d.start_byte and node.end_byte >= d.end_byte):
        node = node.parent
    while node is not None and node.type in _WRAPPERS | {"lexical_declaration",
                                                          "variable_declaration", "type_declaration"}:
        inner = node.child_by_field_name("definition") or node.child_by_field_name("declaration")
        inner = inner or next((c for c in node.named_children if _definition_kind(c) or c.type in (
            "variable_declarator", "type_spec") or c.type in _WRAPPERS), None)
        if inner is None:
            break
        node = inner
    return node


def _param_names(node: Node) -> tuple[str, ...]:
    params = node.child_by_field_name("parameters")
    declarator = node.child_by_field_name("declarator")
    while params is None and declarator is not None:
        params = declarator.child_by_field_name("parameters")
        declarator = declarator.child_by_field_name("declarator")
    if params is None and node.type == "variable_declarator":
        value = node.child_by_field_name("value")
        params = value.child_by_field_name("parameters") if value is not None else None
    names: list[str] = []
    for param in params.named_children if params is not None else ():
        names += _names_of_param(param)
    return tuple(n for n in names if n not in ("self", "cls", "this"))


def _names_of_param(param: Node) -> list[str]:
    if param.type in ("identifier", "shorthand_property_identifier_pattern"):
        return [_text(param)]
    if param.type in ("list_splat_pattern", "dictionary_splat_pattern", "rest_pattern"):
        inner = [n for c in param.named_children for n in _names_of_param(c)]
        star = "**" if param.type == "dictionary_splat_pattern" else "*"
        return [star + n if param.type != "rest_pattern" else n for n in inner]
    named = param.children_by_field_name("name")
    if named:
        return [_text(n) for n in named if n.type in _NAME_NODES]
    for field_name in ("pattern", "left", "declarator"):
        child = param.child_by_field_name(field_name)
        if child is not None:
            return _names_of_param(child)
    if param.type in ("typed_parameter", "typed_default_parameter", "default_parameter"):
        first = param.named_children[0] if param.named_children else None
        return _names_of_param(first) if first is not None else []
    if param.type.endswith("declarator"):
        found = [c for c in param.named_children if c.type in _NAME_NODES]
        return [_text(found[0])] if found else []
    return []


def _python_site(node: Node, lines: list[str], params: tuple[str, ...]) -> DocSite | None:
    body = node.child_by_field_name("body")
    colon = next((c for c in node.children if c.type == ":"), None)
    if body is None or colon is None or body.start_point[0] <= colon.end_point[0]:
        return None  # a one-line definition: no room for a docstring
    row = body.start_point[0]
    first = body.named_children[0] if body.named_children else None
    has_doc = bool(first is not None and first.type == "expression_statement"
                   and first.named_children and first.named_children[0].type == "string")
    indent = lines[row][:len(lines[row]) - len(lines[row].lstrip())]
    return DocSite(row, indent, "python", has_doc, params)


def doc_site(text: str, d: Definition) -> DocSite | None:
    """Where ``d``'s documentation goes; None for languages or shapes we cannot document."""
    style = _DOC_STYLES.get(d.language)
    tree = parse(text, d.language)
    if style is None or tree is None:
        return None
    node = _definition_node(tree, d)
    if node is None:
        return None
    lines = text.split("\n")
    params = _param_names(node)
    if style == "python":
        return _python_site(node, lines, params)
    top = _outer(node)
    while top.prev_named_sibling is not None and top.prev_named_sibling.type in _ABOVE:
        top = top.prev_named_sibling
    above = top.prev_sibling
    has_doc = bool(above is not None and "comment" in above.type
                   and above.end_point[0] >= top.start_point[0] - 1)
    row = top.start_point[0]
    indent = lines[row][:len(lines[row]) - len(lines[row].lstrip())]
    return DocSite(row, indent, style, has_doc, params)
