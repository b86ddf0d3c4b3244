"""The definitions of a file: functions, methods, classes, types and attributes, with signature and text."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from tree_sitter import Node

from .stubs import MAX_LINE
from .syntax import (
    CONTAINERS,
    FUNCTION_KINDS,
    FUNCTION_VALUES,
    KINDS,
    NAME_NODES,
    SKIP_SUFFIXES,
    SKIP_TYPES,
    WORD_RE,
    WRAPPERS,
    Definition,
    node_text,
    parse,
)


def name_node_of(node: Node) -> Node | None:
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
        if declarator.type in NAME_NODES:
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
    return node_text(scope).replace("::", ".") or None


def _container_name(node: Node) -> str | None:
    if node.type == "impl_item":
        return re.sub(r"<.*", "", node_text(node.child_by_field_name("type"))) or None
    name = node.child_by_field_name("name")
    return node_text(name) or None


def _go_receiver(node: Node) -> str | None:
    receiver = node.child_by_field_name("receiver")
    if receiver is None:
        return None
    types = [n for n in WORD_RE.findall(node_text(receiver))]
    return types[-1] if types else None


def definition_kind(node: Node) -> str | None:
    """The kind of a definition node, or None if it defines nothing we list."""
    if node.type == "variable_declarator":
        value = node.child_by_field_name("value")
        return "function" if value is not None and value.type in FUNCTION_VALUES else None
    if node.type == "declaration":  # a C/C++ prototype
        declarator = node.child_by_field_name("declarator")
        return "function" if declarator is not None and declarator.type == "function_declarator" else None
    if node.type in ("struct_specifier", "class_specifier", "enum_specifier", "union_specifier"):
        return KINDS[node.type] if node.child_by_field_name("body") is not None else None
    return KINDS.get(node.type)


def outer_node(node: Node) -> Node:
    """The node with its decorators, export keyword, template header or declaration."""
    while node.parent is not None and (
        node.parent.type in WRAPPERS
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
    if body is not None and body.parent == node:  # comments before the body are not the header
        end = max([c.end_byte for c in node.children
                   if c.end_byte <= body.start_byte and "comment" not in c.type] or [end])
    return _signature(source[start:end].decode("utf-8", errors="replace"))


@functools.lru_cache(maxsize=8192)
def _signature(header: str) -> str:
    """A header's signature, kept: most of a file's headers are the same from one request
    to the next (about 40 KB for the 8,192 last ones)."""
    return tidy_signature(re.sub(r"\s*(\{|:|=>|=)?\s*$", "", header))


def _class_fields(node: Node) -> tuple[str, ...]:
    """The class-level assignments and annotations of a Python class, one line each."""
    body = node.child_by_field_name("body")
    return tuple(" ".join(node_text(stmt).split())[:MAX_LINE]
                 for stmt in (body.named_children if body is not None else ())
                 if stmt.type == "expression_statement" and stmt.named_children
                 and stmt.named_children[0].type == "assignment")


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
    return node.type in SKIP_TYPES or node.type.endswith(SKIP_SUFFIXES)


@dataclass
class _Walk:
    """One pass over a file's tree collecting definitions."""

    path: str
    language: str
    source: bytes
    found: list[Definition] = field(default_factory=list)
    qualnames: set[str] = field(default_factory=set)

    def keep(self, definition: Definition) -> None:
        self.found.append(definition)
        self.qualnames.add(definition.qualname)

    def visit(self, node: Node, scope: list[str], in_class: bool) -> None:
        kind = definition_kind(node)
        if kind is not None:
            self.add(node, kind, scope, in_class)
        if kind in FUNCTION_KINDS:
            if self.language == "python" and in_class and kind in ("function", "method"):
                self.python_attributes(node, scope)
            return
        inner, inner_class = scope, in_class
        if node.type in CONTAINERS:
            name = _container_name(node)
            inner = scope + [name] if name else scope
            inner_class = node.type != "namespace_definition"
        for child in node.named_children:
            if not _skip(child):
                self.visit(child, inner, inner_class)

    def add(self, node: Node, kind: str, scope: list[str], in_class: bool) -> None:
        name_node = name_node_of(node)
        name = node_text(name_node)
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
        outer = outer_node(node)
        self.keep(Definition(
            name=name, qualname=".".join(prefix + [name]), kind=kind, path=self.path,
            language=self.language, line=name_node.start_point[0], start_line=outer.start_point[0],
            end_line=outer.end_point[0], signature=_header(node, outer, self.source),
            text=self.source[outer.start_byte - outer.start_point[1]:outer.end_byte].decode(
                "utf-8", errors="replace"),
            start_byte=outer.start_byte, end_byte=outer.end_byte,
            fields=_class_fields(node) if kind == "class" and self.language == "python" else (),
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
            if left is None or left.type != "attribute" or node_text(
                    left.child_by_field_name("object")) != "self":
                continue
            name_node = left.child_by_field_name("attribute")
            name = node_text(name_node)
            qualname = ".".join(scope + [name])
            if name and name_node is not None and qualname not in self.qualnames:
                text = node_text(stmt)
                self.keep(Definition(
                    name=name, qualname=qualname, kind="attribute",
                    path=self.path, language="python", line=stmt.start_point[0],
                    start_line=stmt.start_point[0], end_line=stmt.end_point[0],
                    signature=tidy_signature(text)[:MAX_LINE], text=text,
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
        if functions_only and d.kind not in FUNCTION_KINDS:
            continue
        if d.kind == "attribute" or not d.start_line <= line <= d.end_line:
            continue
        if best is None or d.end_line - d.start_line < best.end_line - best.start_line:
            best = d
    return best
