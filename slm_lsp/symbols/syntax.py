"""The symbol types (Definition, SymbolRef), the node kinds per language, and parsing."""

from __future__ import annotations

import re
from dataclasses import dataclass

from tree_sitter import Node, Tree

from indexer.languages import get_parser

from .textcache import text_cache

KINDS: dict[str, str] = {
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

FUNCTION_KINDS = frozenset({"function", "method", "constructor", "macro"})
CONTAINERS = frozenset({
    "class_definition", "class_declaration", "abstract_class_declaration", "class_specifier",
    "struct_specifier", "interface_declaration", "trait_item", "impl_item",
    "namespace_definition", "enum_declaration", "record_declaration",
})
"""Nodes whose name qualifies the definitions inside them (``Class.method``)."""

WRAPPERS = frozenset({"decorated_definition", "export_statement", "template_declaration"})
FUNCTION_VALUES = frozenset({"arrow_function", "function_expression", "function",
                              "generator_function"})
NAME_NODES = frozenset({"identifier", "field_identifier", "property_identifier",
                         "type_identifier", "destructor_name", "operator_name",
                         "shorthand_property_identifier", "private_property_identifier",
                         "namespace_identifier", "constant"})
SKIP_SUFFIXES = ("expression", "literal", "string", "arguments", "argument_list", "comment")
SKIP_TYPES = frozenset({"call", "list", "dictionary", "set", "tuple", "array", "object",
                         "initializer_list", "import_statement", "import_from_statement"})
CALLS: dict[str, str] = {"call": "function", "call_expression": "function",
                          "method_invocation": "name", "new_expression": "constructor",
                          "object_creation_expression": "type", "macro_invocation": "macro"}
MEMBER: dict[str, tuple[str, str]] = {
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


def node_text(node: Node | None) -> str:
    return node.text.decode("utf-8", errors="replace") if node is not None and node.text else ""


MAX_PARSE_CHARS = 2 * 1024 * 1024
"""Longer texts are not parsed: a tree of a 50 MB file takes gigabytes (a generated file or
a data dump, not code to complete with definitions)."""


@text_cache(maxsize=16, max_chars=4 << 20)
def parse(text: str, language: str | None) -> Tree | None:
    """A syntax tree, or None for languages without a grammar here and for texts over
    ``MAX_PARSE_CHARS`` (the last few are kept: a request reads the same text for its
    definitions, imports and constants)."""
    parser = get_parser(language)
    if parser is None or len(text) > MAX_PARSE_CHARS:
        return None
    return parser.parse(text.encode("utf-8"))


def byte_col(line_text: str, col: int) -> int:
    return len(line_text[:col].encode("utf-8"))


def char_col(line_bytes: bytes, col: int) -> int:
    return len(line_bytes[:col].decode("utf-8", errors="replace"))
