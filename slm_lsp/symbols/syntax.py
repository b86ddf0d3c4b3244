"""The symbol types (Definition, SymbolRef), the node kinds per language, and parsing."""

from __future__ import annotations

import re
import threading
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
    fields: tuple[str, ...] = ()
    """A Python class's class-level assignments and annotations (``x: int = 0``), each on
    one line."""


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


TREE_CHARS = 1 << 20
"""Text (in characters) of the documents whose trees are kept. A tree takes about 30 bytes
per character (16 trees of jinja2/compiler.py, 72 kB: 33.7 MiB resident), so this keeps
about 30 MiB of trees; at 4 Mi characters up to 120 MiB could stay, in the malloc arenas of
the threads that parsed."""


@text_cache(maxsize=16, max_chars=TREE_CHARS)
def parse(text: str, language: str | None) -> Tree | None:
    """A syntax tree, or None for languages without a grammar here and for texts over
    ``MAX_PARSE_CHARS`` (the last few are kept: a request reads the same text for its
    definitions, imports and constants). A text that differs from one parsed recently in
    one stretch (an edit) is parsed incrementally from that one's tree."""
    parser = get_parser(language)
    if parser is None or len(text) > MAX_PARSE_CHARS:
        return None
    data = text.encode("utf-8")
    old = _edited_tree(data, language)
    tree = parser.parse(data, old) if old is not None else parser.parse(data)
    if len(data) <= RECENT_MAX_BYTES:
        with _RECENT_LOCK:
            _RECENT.append((language, data, tree))
            del _RECENT[:-RECENT_TREES]
    return tree


RECENT_TREES = 4
"""Trees kept as starting points of incremental parses (the texts are kept with them)."""
RECENT_MAX_BYTES = 512 * 1024
"""Larger texts are not kept for that (their trees take memory out of proportion)."""
MIN_SHARED = 0.9
"""Share of a text another must have in common (as a prefix plus a suffix) to start from it."""
_RECENT: list[tuple[str | None, bytes, Tree]] = []
_RECENT_LOCK = threading.Lock()


def _edited_tree(data: bytes, language: str | None) -> Tree | None:
    """A copy of a recent tree of ``language`` edited into the shape of ``data``, if one of
    the recent texts shares at least ``MIN_SHARED`` of it; else None."""
    with _RECENT_LOCK:
        recent = [(old, tree) for lang, old, tree in _RECENT if lang == language]
    best: tuple[int, int, bytes, Tree] | None = None
    for old, tree in recent:
        head = _common_prefix(old, data)
        tail = _common_suffix(old, data, min(len(old), len(data)) - head)
        if best is None or head + tail > best[0] + best[1]:
            best = (head, tail, old, tree)
    if best is None or best[0] + best[1] < MIN_SHARED * len(data):
        return None
    head, tail, old, tree = best
    edited = tree.copy()
    edited.edit(start_byte=head, old_end_byte=len(old) - tail, new_end_byte=len(data) - tail,
                start_point=_point(data, head), old_end_point=_point(old, len(old) - tail),
                new_end_point=_point(data, len(data) - tail))
    return edited


def _common_prefix(a: bytes, b: bytes) -> int:
    """Length of the common prefix, by halving; each step compares only the bytes not yet
    known to be equal (one C-level comparison; all steps together copy at most the text)."""
    low, high = 0, min(len(a), len(b))
    while low < high:
        mid = (low + high + 1) // 2
        if a[low:mid] == b[low:mid]:
            low = mid
        else:
            high = mid - 1
    return low


def _common_suffix(a: bytes, b: bytes, limit: int) -> int:
    """Length of the common suffix, at most ``limit`` (so it does not overlap the prefix)."""
    low, high = 0, max(0, limit)
    while low < high:
        mid = (low + high + 1) // 2
        if a[len(a) - mid:len(a) - low] == b[len(b) - mid:len(b) - low]:
            low = mid
        else:
            high = mid - 1
    return low


def _point(data: bytes, offset: int) -> tuple[int, int]:
    """(row, byte column) of a byte offset."""
    row = data.count(b"\n", 0, offset)
    return row, offset - (data.rfind(b"\n", 0, offset) + 1)


def byte_col(line_text: str, col: int) -> int:
    return len(line_text[:col].encode("utf-8"))


def char_col(line_bytes: bytes, col: int) -> int:
    return len(line_bytes[:col].decode("utf-8", errors="replace"))
