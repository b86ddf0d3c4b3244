"""Where a definition's documentation comment goes, and in which convention."""

from __future__ import annotations

from dataclasses import dataclass

from tree_sitter import Node, Tree

from .definitions import definition_kind, outer_node
from .syntax import NAME_NODES, WRAPPERS, Definition, node_text, parse

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
    while node is not None and node.type in WRAPPERS | {"lexical_declaration",
                                                          "variable_declaration", "type_declaration"}:
        inner = node.child_by_field_name("definition") or node.child_by_field_name("declaration")
        inner = inner or next((c for c in node.named_children if definition_kind(c) or c.type in (
            "variable_declarator", "type_spec") or c.type in WRAPPERS), None)
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
        return [node_text(param)]
    if param.type in ("list_splat_pattern", "dictionary_splat_pattern", "rest_pattern"):
        inner = [n for c in param.named_children for n in _names_of_param(c)]
        star = "**" if param.type == "dictionary_splat_pattern" else "*"
        return [star + n if param.type != "rest_pattern" else n for n in inner]
    named = param.children_by_field_name("name")
    if named:
        return [node_text(n) for n in named if n.type in NAME_NODES]
    for field_name in ("pattern", "left", "declarator"):
        child = param.child_by_field_name(field_name)
        if child is not None:
            return _names_of_param(child)
    if param.type in ("typed_parameter", "typed_default_parameter", "default_parameter"):
        first = param.named_children[0] if param.named_children else None
        return _names_of_param(first) if first is not None else []
    if param.type.endswith("declarator"):
        found = [c for c in param.named_children if c.type in NAME_NODES]
        return [node_text(found[0])] if found else []
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
    top = outer_node(node)
    while top.prev_named_sibling is not None and top.prev_named_sibling.type in _ABOVE:
        top = top.prev_named_sibling
    above = top.prev_sibling
    has_doc = bool(above is not None and "comment" in above.type
                   and above.end_point[0] >= top.start_point[0] - 1)
    row = top.start_point[0]
    indent = lines[row][:len(lines[row]) - len(lines[row].lstrip())]
    return DocSite(row, indent, style, has_doc, params)
