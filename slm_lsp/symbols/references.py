"""Names used in code: the identifier under the cursor, the functions a range calls,
the names a file imports.
"""
from __future__ import annotations

import re

from tree_sitter import Node

from .definitions import name_node_of
from .syntax import (
    CALLS,
    KINDS,
    MEMBER,
    NAME_NODES,
    WORD_RE,
    SymbolRef,
    byte_col,
    char_col,
    node_text,
    parse,
)


def symbol_at(text: str, language: str | None, line: int, col: int) -> SymbolRef | None:
    """The identifier at (line, code-point col), or just before it; None elsewhere."""
    tree = parse(text, language)
    lines = text.split("\n")
    if tree is None or not 0 <= line < len(lines):
        return None
    point = (line, byte_col(lines[line], col))
    node = tree.root_node.named_descendant_for_point_range(point, point)
    if (node is None or node.type not in NAME_NODES) and col > 0:  # cursor right after a word
        before = (line, byte_col(lines[line], col - 1))
        node = tree.root_node.named_descendant_for_point_range(before, before)
    if node is None or node.type not in NAME_NODES:
        return None
    raw = lines[line].encode("utf-8")
    return SymbolRef(
        name=node_text(node), line=line,
        start=char_col(raw, node.start_point[1]), end=char_col(raw, node.end_point[1]),
        qualifier=_qualifier(node), called=_is_called(node), is_definition=_names_definition(node),
    )


def _qualifier(node: Node) -> str | None:
    parent = node.parent
    if parent is None or parent.type not in MEMBER:
        return None
    obj_field, name_field = MEMBER[parent.type]
    if parent.child_by_field_name(name_field) != node:
        return None
    obj = parent.child_by_field_name(obj_field) or parent.child_by_field_name("value")
    return node_text(obj) or None


def _is_called(node: Node) -> bool:
    target = node
    parent = node.parent
    if parent is not None and parent.type in MEMBER and parent.type != "method_invocation":
        target, parent = parent, parent.parent
    if parent is None or parent.type not in CALLS:
        return False
    return parent.child_by_field_name(CALLS[parent.type]) == target or (
        parent.type == "method_invocation" and parent.child_by_field_name("name") == node)


def _names_definition(node: Node) -> bool:
    parent = node.parent
    while parent is not None and parent.type in ("function_declarator", "qualified_identifier",
                                                 "pointer_declarator", "reference_declarator"):
        parent = parent.parent
    if parent is None or (parent.type not in KINDS and parent.type != "variable_declarator"):
        return False
    return name_node_of(parent) == node


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
        if current.type in CALLS:
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
    target = call.child_by_field_name(CALLS[call.type])
    qualifier: str | None = None
    if call.type == "method_invocation":
        qualifier = node_text(call.child_by_field_name("object")) or None
    while target is not None and target.type in MEMBER:
        obj = target.child_by_field_name(MEMBER[target.type][0]) or \
            target.child_by_field_name("value")
        qualifier = node_text(obj) or None
        target = target.child_by_field_name(MEMBER[target.type][1])
    if target is not None and target.type in ("generic_function", "generic_type"):
        target = target.named_children[0] if target.named_children else None
    if target is None or target.type not in NAME_NODES:
        return None
    return node_text(target), qualifier


_IMPORT_LINE = re.compile(r"^\s*(?:import|from|use|using|#\s*include|package)\b.*$", re.M)


def imported_names(text: str) -> set[str]:
    """Identifiers on the file's import lines (module names and their aliases)."""
    return {w for line in _IMPORT_LINE.findall(text) for w in WORD_RE.findall(line)}
