"""Symbols with tree-sitter: what is under the cursor, where it is defined, what it calls.

``symbol_at`` names the identifier at a position (with its qualifier, such as
``self`` in ``self.run()``, and whether it is called). ``definitions`` lists the
functions, methods, classes and types of a file with their signature and text.
``SourceTree`` finds definitions by name across the workspace: open documents
first, then the repository index when there is one, then the files under the
root (read once, re-read when they change). ``Resolver`` follows a file's imports
to the definitions its names refer to (``lookup`` for one use, ``around`` for a cursor).

Modules: ``syntax`` (the types, node kinds, parsing), ``references`` (names
used: at the cursor, called, imported), ``definitions`` (a file's definitions),
``tree`` (the workspace), ``docsite`` (where a docstring goes), ``imports`` (what a file
imports), ``resolve`` (names to definitions), ``stubs`` (definitions as prompt stubs). The names below
are the package's interface.
"""

from .definitions import definitions, innermost, tidy_signature
from .docsite import DocSite, doc_site
from .imports import Import, imports_of
from .references import call_sites, calls_in, imported_names, symbol_at
from .resolve import Found, Resolver, resolver_for
from .syntax import WORD_RE, Definition, SymbolRef, parse
from .tree import SourceTree

__all__ = [
    "WORD_RE",
    "Definition",
    "Found",
    "Import",
    "Resolver",
    "DocSite",
    "SourceTree",
    "SymbolRef",
    "call_sites",
    "calls_in",
    "definitions",
    "doc_site",
    "imported_names",
    "imports_of",
    "innermost",
    "parse",
    "resolver_for",
    "symbol_at",
    "tidy_signature",
]
