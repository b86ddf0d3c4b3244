"""Split a source file into retrieval chunks at syntactic boundaries.

For the tree-sitter languages of `indexer.languages` a file becomes one chunk per
top-level function, class or other definition. A definition longer than
`ChunkLimits.max_lines` is split: a class-like one into its header and members
(methods get the symbol `Class.method`), anything else into overlapping line
windows. Small neighbouring pieces (imports, constants, tiny functions) are merged
up to `ChunkLimits.merge_lines`. Other text files, and files tree-sitter cannot
parse, fall back to overlapping line windows with a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from tree_sitter import Node

from indexer.languages import get_parser
from indexer.pieces import ChunkLimits, Piece, fit_pieces, windows

__all__ = ["CHUNKER_VERSION", "DEFAULT_LIMITS", "SYNTAX", "Chunk", "ChunkLimits", "chunk_text",
           "fallback_language"]

log = logging.getLogger(__name__)


CHUNKER_VERSION = 2
"""Bump when chunk boundaries or texts change, so saved indexes are rebuilt (2: secrets
are redacted, so an index saved before holds them and must go)."""


@dataclass(frozen=True)
class Chunk:
    """A piece of a file: lines `start_line`..`end_line` (1-based, inclusive) and their text."""

    path: str
    language: str
    start_line: int
    end_line: int
    text: str
    symbol: str | None = None
    kind: str = "text"


DEFAULT_LIMITS = ChunkLimits()


@dataclass(frozen=True)
class _Syntax:
    """Node types with a chunking role in one grammar."""

    functions: frozenset[str]
    classes: frozenset[str]
    types: frozenset[str] = frozenset()
    namespaces: frozenset[str] = frozenset()
    wrappers: frozenset[str] = frozenset()
    variables: frozenset[str] = frozenset()
    trivia: frozenset[str] = frozenset({"comment"})


_JS_FUNCTIONS = frozenset({
    "function_declaration", "generator_function_declaration", "method_definition",
    "function_signature", "abstract_method_signature", "method_signature",
})
_JS = _Syntax(
    functions=_JS_FUNCTIONS,
    classes=frozenset({"class_declaration", "abstract_class_declaration", "class",
                       "interface_declaration", "enum_declaration"}),
    types=frozenset({"type_alias_declaration"}),
    namespaces=frozenset({"internal_module", "module"}),
    wrappers=frozenset({"export_statement", "expression_statement", "ambient_declaration"}),
    variables=frozenset({"lexical_declaration", "variable_declaration"}),
)
_C_LIKE = _Syntax(
    functions=frozenset({"function_definition"}),
    classes=frozenset({"struct_specifier", "union_specifier", "enum_specifier",
                       "class_specifier"}),
    types=frozenset({"type_definition", "alias_declaration"}),
    namespaces=frozenset({"namespace_definition", "linkage_specification", "preproc_if",
                          "preproc_ifdef", "preproc_else", "preproc_elif"}),
    wrappers=frozenset({"template_declaration"}),
)
SYNTAX: dict[str, _Syntax] = {
    "python": _Syntax(
        functions=frozenset({"function_definition"}),
        classes=frozenset({"class_definition"}),
        wrappers=frozenset({"decorated_definition"}),
    ),
    "javascript": _JS,
    "typescript": _JS,
    "tsx": _JS,
    "go": _Syntax(
        functions=frozenset({"function_declaration", "method_declaration"}),
        classes=frozenset(),
        types=frozenset({"type_declaration"}),
    ),
    "rust": _Syntax(
        functions=frozenset({"function_item", "function_signature_item", "macro_definition"}),
        classes=frozenset({"impl_item", "trait_item", "struct_item", "enum_item",
                           "union_item"}),
        types=frozenset({"type_item"}),
        namespaces=frozenset({"mod_item"}),
        trivia=frozenset({"line_comment", "block_comment", "attribute_item"}),
    ),
    "java": _Syntax(
        functions=frozenset({"method_declaration", "constructor_declaration",
                             "compact_constructor_declaration"}),
        classes=frozenset({"class_declaration", "interface_declaration", "enum_declaration",
                           "record_declaration", "annotation_type_declaration"}),
        trivia=frozenset({"line_comment", "block_comment"}),
    ),
    "c": _C_LIKE,
    "cpp": _C_LIKE,
}

_NAME_TYPES = frozenset({"identifier", "field_identifier", "qualified_identifier",
                         "destructor_name", "operator_name", "type_identifier"})
_FUNCTION_VALUES = frozenset({"arrow_function", "function_expression", "function",
                              "generator_function"})
_warned_languages: set[str] = set()


def chunk_text(path: str, text: str, language: str | None,
               limits: ChunkLimits = DEFAULT_LIMITS) -> list[Chunk]:
    """Chunks of a file's text; `path` is the root-relative `/` path stored in each chunk."""
    lines = text.splitlines(keepends=True)
    if not lines or not text.strip():
        return []
    lang = language or fallback_language(path)
    syntax = SYNTAX.get(lang)
    pieces = _syntax_pieces(path, text, lang, syntax, limits) if syntax else None
    if pieces is None:
        if syntax is None:
            _warn_once(lang)
        pieces = windows(0, len(lines) - 1, "text", None, limits.text_window, limits.overlap)
    return [_make_chunk(path, lang, lines, p, limits) for p in pieces
            if "".join(lines[p.start:p.end + 1]).strip()]


def fallback_language(path: str) -> str:
    """A language label for a file without a grammar: its extension, or `text`."""
    suffix = PurePosixPath(path).suffix.lower().lstrip(".")
    return suffix or "text"


def _warn_once(language: str) -> None:
    """Log once per language that it is chunked by lines."""
    if language not in _warned_languages:
        _warned_languages.add(language)
        log.warning("no tree-sitter grammar for %r files; chunking them by lines", language)


def _syntax_pieces(path: str, text: str, lang: str, syntax: _Syntax,
                   limits: ChunkLimits) -> list[Piece] | None:
    """Pieces from the syntax tree, or None if the file could not be parsed."""
    parser = get_parser(lang)
    if parser is None:
        _warn_once(lang)
        return None
    try:
        tree = parser.parse(text.encode("utf-8"))
    except Exception as exc:  # noqa: BLE001 - any parser failure falls back to lines
        log.warning("tree-sitter failed on %s (%s); chunking it by lines", path, exc)
        return None
    root = tree.root_node
    if root.has_error and _error_share(root) > 0.5:
        log.warning("%s is mostly unparsable as %s; chunking it by lines", path, lang)
        return None
    builder = _Builder(syntax, limits, _line_lengths(text))
    pieces = builder.members(list(root.named_children), None)
    return fit_pieces(pieces, limits, builder.lengths)


def _error_share(root: Node) -> float:
    """Fraction of the file's rows covered by top-level ERROR nodes."""
    total = max(1, root.end_point[0] + 1)
    bad = sum(c.end_point[0] - c.start_point[0] + 1 for c in root.children if c.type == "ERROR")
    return bad / total


def _line_lengths(text: str) -> list[int]:
    """Length in characters of each line, newline included."""
    return [len(line) for line in text.splitlines(keepends=True)]


def _end_row(node: Node) -> int:
    """The last row a node really occupies (a trailing newline does not count)."""
    row, column = node.end_point
    return max(node.start_point[0], row - 1 if column == 0 else row)


class _Builder:
    """Turns syntax nodes into pieces, recursing into large classes and namespaces."""

    def __init__(self, syntax: _Syntax, limits: ChunkLimits, lengths: list[int]) -> None:
        """A builder for one grammar's node types and a file's line lengths."""
        self.syntax = syntax
        self.limits = limits
        self.lengths = lengths

    def members(self, nodes: Sequence[Node], context: str | None) -> list[Piece]:
        """Pieces for a sequence of sibling nodes, attaching leading comments to definitions."""
        pieces: list[Piece] = []
        trivia: list[Node] = []
        for node in nodes:
            if node.type in self.syntax.trivia:
                covered = pieces and node.start_point[0] <= pieces[-1].end
                if not covered:  # a trailing comment on a line already taken is skipped
                    trivia.append(node)
                continue
            defined = self.definition(node)
            start = node.start_point[0]
            if defined is not None:
                while trivia and _end_row(trivia[-1]) + 1 >= start:
                    start = trivia.pop().start_point[0]
            pieces.extend(self._plain(n) for n in trivia)
            trivia = []
            pieces.extend(self.pieces(node, defined, start, context))
        pieces.extend(self._plain(n) for n in trivia)
        return sorted(pieces, key=lambda p: p.start)

    def _plain(self, node: Node) -> Piece:
        """A non-definition piece covering one node."""
        return Piece(node.start_point[0], _end_row(node), "block", None, False)

    def definition(self, node: Node) -> Node | None:
        """The definition node inside `node` (unwrapping exports/decorators), or None."""
        s = self.syntax
        if node.type in s.functions | s.classes | s.types | s.namespaces:
            return node
        if node.type in s.variables and self._function_value(node) is not None:
            return node
        if node.type in s.wrappers:
            inner = node.child_by_field_name("definition") or node.child_by_field_name(
                "declaration")
            candidates = [inner] if inner is not None else list(node.named_children)
            for child in candidates:
                found = self.definition(child)
                if found is not None:
                    return found
        return None

    def _function_value(self, node: Node) -> Node | None:
        """For `const f = () => ...`, the declarator whose value is a function or class."""
        declarators = [c for c in node.named_children if c.type == "variable_declarator"]
        if len(declarators) != 1:
            return None
        value = declarators[0].child_by_field_name("value")
        if value is not None and (value.type in _FUNCTION_VALUES or value.type == "class"):
            return declarators[0]
        return None

    def pieces(self, outer: Node, defined: Node | None, start: int,
               context: str | None) -> list[Piece]:
        """Pieces for one top-level (or member) node spanning rows `start`..end."""
        end = _end_row(outer)
        if defined is None:
            if end - start + 1 <= self.limits.max_lines:
                return [Piece(start, end, "block", None, False)]
            return windows(start, end, "block", None, self.limits.max_lines, self.limits.overlap)
        kind = self.kind(defined, context)
        name = self.name(defined)
        symbol = _qualify(context, name)
        if end - start + 1 <= self.limits.max_lines:
            return [Piece(start, end, kind, symbol, True)]
        body = self.body(defined)
        if body is not None and kind in ("class", "namespace"):
            split = self.split_container(start, end, body, kind, symbol)
            if split:
                return split
        step = self.limits.max_lines
        return windows(start, end, kind, symbol, step, self.limits.overlap)

    def split_container(self, start: int, end: int, body: Node, kind: str,
                        symbol: str | None) -> list[Piece]:
        """A large class or namespace as its header, its members and its closing lines."""
        children = [c for c in body.named_children]
        if not children:
            return []
        inner = self.members(children, symbol)
        if not inner:
            return []
        first = min(p.start for p in inner)
        last = max(p.end for p in inner)
        header = Piece(start, max(start, first - 1), kind, symbol, True)
        if first > start:
            inner.insert(0, header)
        else:
            inner[0].start = start
        if end > last:
            inner[-1].end = end
        merged = fit_pieces(inner, self.limits, self.lengths)
        for piece in merged:  # members never merge with what lies outside their container
            piece.sealed = True
        return merged

    def body(self, node: Node) -> Node | None:
        """The member list of a class-like or namespace node."""
        body = node.child_by_field_name("body")
        if body is None and node.type.startswith("preproc_"):
            return node
        if body is None and node.type == "linkage_specification":
            return node.child_by_field_name("body")
        return body

    def kind(self, node: Node, context: str | None) -> str:
        """`function`, `method`, `class`, `type` or `namespace` for a definition node."""
        s = self.syntax
        if node.type in s.classes:
            return "class"
        if node.type in s.types:
            return "type"
        if node.type in s.namespaces:
            return "namespace"
        if node.type == "method_declaration" and node.child_by_field_name("receiver"):
            return "method"
        if node.type in ("method_definition", "method_signature", "abstract_method_signature",
                         "constructor_declaration", "compact_constructor_declaration"):
            return "method"
        declarator = node.child_by_field_name("declarator")
        if declarator is not None and "::" in _declarator_name(declarator):
            return "method"
        if context is not None and self._in_class(node):
            return "method"
        return "function"

    def _in_class(self, node: Node) -> bool:
        """True if the nearest enclosing definition of `node` is class-like."""
        parent = node.parent
        while parent is not None:
            if parent.type in self.syntax.classes:
                return True
            if parent.type in self.syntax.functions | self.syntax.namespaces:
                return False
            parent = parent.parent
        return False

    def name(self, node: Node) -> str | None:
        """The defined name, e.g. `parse`, `Stack.Push`, `Point` or `geo::Circle::area`."""
        if node.type in self.syntax.variables:
            declarator = self._function_value(node)
            node = declarator if declarator is not None else node
        if node.type == "method_declaration" and node.child_by_field_name("receiver"):
            return _go_method_name(node)
        if node.type == "impl_item":
            return _text(node.child_by_field_name("type"))
        if node.type == "type_declaration":
            spec = next((c for c in node.named_children if c.type in ("type_spec",
                                                                        "type_alias")), None)
            return _text(spec.child_by_field_name("name")) if spec is not None else None
        if node.type == "type_definition":
            return _text(node.child_by_field_name("declarator"))
        named = node.child_by_field_name("name")
        if named is not None:
            return _text(named)
        declarator = node.child_by_field_name("declarator")
        if declarator is not None:
            return _declarator_name(declarator) or None
        return None


def _go_method_name(node: Node) -> str | None:
    """`Type.Method` for a Go method declaration."""
    receiver = node.child_by_field_name("receiver")
    method = _text(node.child_by_field_name("name"))
    owner = _first_of_type(receiver, "type_identifier") if receiver is not None else None
    return _qualify(_text(owner), method)


def _first_of_type(node: Node, node_type: str) -> Node | None:
    """The first descendant (depth first) of a given type."""
    for child in node.named_children:
        if child.type == node_type:
            return child
        found = _first_of_type(child, node_type)
        if found is not None:
            return found
    return None


def _declarator_name(node: Node) -> str:
    """The name inside a C/C++ declarator chain (`*find(...)` -> `find`)."""
    current: Node | None = node
    while current is not None:
        if current.type in _NAME_TYPES:
            return _text(current) or ""
        inner = current.child_by_field_name("declarator")
        if inner is None:
            inner = next((c for c in current.named_children if c.type in _NAME_TYPES), None)
        current = inner
    return ""


def _text(node: Node | None) -> str | None:
    """A node's source text, or None."""
    if node is None or node.text is None:
        return None
    return node.text.decode("utf-8", errors="replace")


def _qualify(context: str | None, name: str | None) -> str | None:
    """`Context.name`, or whichever part exists."""
    if context and name:
        return f"{context}.{name}"
    return name or context


def _make_chunk(path: str, language: str, lines: list[str], piece: Piece,
                limits: ChunkLimits) -> Chunk:
    """The chunk for a piece; a single enormous line is cut to keep chunks bounded."""
    text = "".join(lines[piece.start:piece.end + 1])
    if len(text) > 4 * limits.max_chars:
        text = text[: 4 * limits.max_chars]
    return Chunk(path, language, piece.start + 1, piece.end + 1, text, piece.symbol, piece.kind)
