"""Definitions as compact stubs for a prompt: signatures and first docstring lines, no bodies.

A function is its signature and the first line of its docstring; a class is its header,
its class-level fields, the ``self.x = ...`` attributes its methods set, and its methods'
signatures. Python stubs read as Python (``...`` for bodies); other languages get the
signatures as written.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .syntax import Definition, node_text, parse
from .textcache import text_cache

MAX_MEMBERS = 24
"""Methods and attributes listed per class stub (the first ones, in file order)."""
MAX_LINE = 160
_DOC = re.compile(r"""^\s*[rRuUbB]{0,2}("{3}|'{3}|"|')\s*(.*?)\s*(?:\1.*)?$""")


def doc_line(definition: Definition) -> str:
    """The first line of a Python definition's docstring, or ''."""
    if definition.language != "python":
        return ""
    lines = definition.text.split("\n")
    header_done = False
    for line in lines[:40]:
        stripped = line.strip()
        if not header_done:
            header_done = stripped.endswith(":") and not stripped.startswith("@")
            continue
        if not stripped:
            continue
        match = _DOC.match(line)
        return match.group(2)[:MAX_LINE] if match and match.group(2) else ""
    return ""


def _indent(text: str, by: str) -> str:
    return "\n".join(by + line if line else line for line in text.split("\n"))


def function_stub(definition: Definition, indent: str = "", compact: bool = False) -> str:
    """Signature and first docstring line (``compact``: the signature alone)."""
    signature = definition.signature
    if definition.language != "python":
        return _indent(signature, indent)
    doc = "" if compact else doc_line(definition)
    body = f'\n{indent}    """{doc}"""\n{indent}    ...' if doc else " ..."
    return _indent(signature, indent) + ":" + body


def class_stub(definition: Definition, members: Sequence[Definition], compact: bool = False) -> str:
    """``definition`` (a class) with its fields, attributes and method signatures
    (``compact``: without docstrings, fields and attributes)."""
    python = definition.language == "python"
    lines = [definition.signature + (":" if python else "")]
    doc = "" if compact else doc_line(definition)
    if doc:
        lines.append(f'    """{doc}"""')
    if not compact:
        lines += [f"    {field}" for field in definition.fields]
    if compact:
        members = [m for m in members if m.kind != "attribute"]
    methods = [m for m in members if m.kind != "attribute"][:MAX_MEMBERS]
    attributes = [m for m in members if m.kind == "attribute"][:MAX_MEMBERS]
    for method in methods:
        own = [a for a in attributes if method.start_line <= a.line <= method.end_line]
        if python and own:
            lines.append(_indent(method.signature, "    ") + ":")
            lines += [f"        {' '.join(a.signature.split())[:MAX_LINE]}" for a in own]
        else:
            lines.append(function_stub(method, "    ", compact))
    if python and len(lines) == 1:
        lines.append("    ...")
    return "\n".join(lines)


def constant_stub(definition: Definition) -> str:
    return " ".join(definition.signature.split())[:MAX_LINE]


def module_constants(text: str, path: str) -> list[Definition]:
    """Module-level ``NAME = ...`` / ``NAME: T = ...`` of a Python file, as definitions."""
    return list(_module_constants(text, path))


@text_cache(maxsize=256, max_chars=4 << 20, versions=2)
def _module_constants(text: str, path: str) -> tuple[Definition, ...]:
    tree = parse(text, "python")
    found: list[Definition] = []
    if tree is None:
        return ()
    for stmt in tree.root_node.named_children:
        if stmt.type != "expression_statement" or not stmt.named_children:
            continue
        expr = stmt.named_children[0]
        left = expr.child_by_field_name("left") if expr.type == "assignment" else None
        if left is None or left.type != "identifier":
            continue
        statement = node_text(stmt)
        first = statement.split("\n")[0]
        signature = first if len(first) <= MAX_LINE else first[:MAX_LINE - 4] + " ..."
        if "\n" in statement:
            signature += " ..."
        found.append(Definition(
            name=node_text(left), qualname=node_text(left), kind="constant", path=path,
            language="python", line=stmt.start_point[0], start_line=stmt.start_point[0],
            end_line=stmt.end_point[0], signature=signature, text=statement,
            start_byte=stmt.start_byte, end_byte=stmt.end_byte))
    return tuple(found)
