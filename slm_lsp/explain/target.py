"""What a hover explains: the symbol at the cursor resolved to a definition, and the
header shown above the explanation.
"""

from __future__ import annotations

import keyword
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..symbols import (
    WORD_RE,
    Definition,
    SourceTree,
    SymbolRef,
    call_sites,
    imported_names,
    innermost,
    resolver_for,
    symbol_at,
)
from .docstring import first_sentence
from .guard import BUILTINS

DEF_CHARS = 2400
"""Longest definition text put in a prompt (head kept, the rest elided)."""
MAX_CALLEES = 4


# -- what is explained ----------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """What a hover explains: a definition, what encloses it, what it calls."""

    ref: SymbolRef
    path: str
    language: str
    definition: Definition | None
    alternatives: int = 0
    """How many other definitions of the same name were found."""
    scope: Definition | None = None
    """The class or function the definition sits in."""
    callees: tuple[Definition, ...] = ()


def resolve_target(tree: SourceTree, path: str, text: str, language: str | None,
                   line: int, col: int) -> Target | None:
    """The symbol at (line, code-point col) and its definition, or None off a symbol."""
    if language is None:
        return None
    ref = symbol_at(text, language, line, col)
    if ref is None or keyword.iskeyword(ref.name):
        return None
    here = tree.definitions_in(path, text, language)
    if ref.is_definition:
        candidates = [d for d in here if d.line == ref.line and d.name == ref.name]
    else:
        site = innermost(here, line, functions_only=True)
        resolved = resolver_for(tree).lookup(path, text, language, ref.name, ref.qualifier)
        candidates = _rank(tree.find(ref.name) if resolved is None else resolved, ref, path,
                           site, text)
    if not candidates:
        return Target(ref, path, language, None)
    best = candidates[0]
    return Target(ref, path, language, best, len(candidates) - 1, _scope(tree, best),
                  _callees(tree, best))


def _rank(candidates: list[Definition], ref: SymbolRef, path: str, site: Definition | None,
          text: str) -> list[Definition]:
    """Candidate definitions, most likely first."""
    owner = site.qualname.rsplit(".", 1)[0] if site and "." in site.qualname else None
    qualifier = (ref.qualifier or "").split(".")[-1].split("::")[-1]
    stem = Path(path).stem

    def score(d: Definition) -> tuple[int, ...]:
        parent = d.qualname.rsplit(".", 1)[0] if "." in d.qualname else ""
        return (
            -(qualifier in ("self", "this", "cls", "Self") and parent == owner),
            -(bool(qualifier) and (parent.split(".")[-1] == qualifier
                                   or Path(d.path).stem == qualifier)),
            -(bool(ref.qualifier) == (d.kind in ("method", "attribute"))),
            -(d.path == path),
            -(Path(d.path).stem != stem and Path(d.path).stem in text),
            d.kind == "attribute",
            len(d.path),
            d.line,
        )

    return sorted(candidates, key=score)


def _scope(tree: SourceTree, d: Definition) -> Definition | None:
    """The smallest other definition around ``d`` in its file (a method's class)."""
    around = [x for x in tree.definitions_in(d.path) if x.kind != "attribute" and x != d
              and x.start_line <= d.start_line and x.end_line >= d.end_line]
    if d.kind == "attribute":
        around = [x for x in around if x.kind not in ("function", "method", "constructor")]
    return min(around, key=lambda x: x.end_line - x.start_line, default=None)


def summary_line(d: Definition) -> str:
    """The first sentence of a definition's docstring or leading doc comment, if any."""
    match = re.search(r'(?:"""|\'\'\'|/\*\*|///|//)(.{1,400}?)(?:"""|\'\'\'|\*/|\n\s*\n|$)',
                      d.text, flags=re.S)
    if match is None:
        return ""
    text = re.sub(r"^\s*(?:\*|///|//)", " ", match.group(1), flags=re.M)
    return first_sentence(text)


def _callees(tree: SourceTree, definition: Definition) -> tuple[Definition, ...]:
    """Repository definitions of the functions ``definition`` calls (signatures for context)."""
    text = tree.text_of(definition.path)
    if text is None or definition.kind not in ("function", "method", "constructor"):
        return ()
    imports = imported_names(text)
    out: list[Definition] = []
    for name, qualifier in call_sites(text, definition.language, definition.start_byte,
                                      definition.end_byte):
        if name == definition.name or keyword.iskeyword(name) or name in BUILTINS:
            continue
        if _external(tree, qualifier, imports):
            continue
        resolved = resolver_for(tree).lookup(definition.path, text, definition.language, name,
                                             qualifier)
        found = [d for d in (tree.find(name) if resolved is None else resolved)
                 if d.kind != "attribute"]
        if found:
            out.append(_rank(found, SymbolRef(name, 0, 0, 0, qualifier), definition.path,
                             definition, text)[0])
        if len(out) >= MAX_CALLEES:
            break
    return tuple(out)


def _external(tree: SourceTree, qualifier: str | None, imports: set[str]) -> bool:
    """True for calls on an imported module that the repository does not define
    (``weakref.ref``, ``os.path.join``): their namesakes in the repository are unrelated."""
    head = WORD_RE.match(qualifier or "")
    if head is None or head.group(0) not in imports:
        return False
    module = head.group(0)
    return not tree.find(module) and not any(Path(p).stem == module for p in tree.list_files())


def short(signature: str, limit: int = 100) -> str:
    """A callee's signature on one line, without decorators, cut at ``limit`` characters."""
    line = " ".join(x for x in signature.split("\n") if not x.lstrip().startswith(("@", "#[")))
    line = " ".join(line.split())
    return line if len(line) <= limit else line[:limit - 3].rstrip() + "..."


def dedent(text: str) -> str:
    lines = text.split("\n")
    indents = [len(x) - len(x.lstrip()) for x in lines if x.strip()]
    cut = min(indents) if indents else 0
    return "\n".join(x[cut:] for x in lines)


def clip(text: str, limit: int) -> str:
    """At most ``limit`` characters, cut at a line end."""
    if len(text) <= limit:
        return text
    head = text[:limit].rsplit("\n", 1)[0]
    return head + "\n    ... (rest of the definition omitted)"


# -- markdown -------------------------------------------------------------------------


def rel(path: str, root: str | None) -> str:
    """``path`` relative to the workspace root when it is inside it."""
    if root:
        try:
            relative = os.path.relpath(path, root)
            if not relative.startswith(".."):
                return Path(relative).as_posix()
        except ValueError:
            pass
    return path


def header_markdown(target: Target, root: str | None) -> str:
    """Where the symbol is defined and its signature (no model needed)."""
    d = target.definition
    if d is None:
        where = f" on `{target.ref.qualifier}`" if target.ref.qualifier else ""
        return f"**`{target.ref.name}`**{where}: no definition found in this workspace"
    location = f"{rel(d.path, root)}:{d.line + 1}"
    link = f"[{location}]({Path(d.path).as_uri()}#L{d.line + 1})"
    more = f" (and {target.alternatives} other definition{'s' * (target.alternatives > 1)})" \
        if target.alternatives else ""
    return f"**`{d.qualname}`** ({d.kind}), defined at {link}{more}\n\n" \
           f"```{d.language}\n{d.signature}\n```"
