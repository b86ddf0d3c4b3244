"""Tree-sitter languages from the official per-language grammar wheels.

One table maps LSP language ids and file extensions to a grammar module. A
grammar that is not installed is reported as missing (``None``), never as a
crash: callers fall back to plain-text handling.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from functools import cache
from pathlib import PurePath

from tree_sitter import Language, Parser

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Grammar:
    """Where a language's grammar lives and which files use it."""

    name: str
    module: str
    function: str
    extensions: tuple[str, ...]
    aliases: tuple[str, ...] = ()


GRAMMARS: tuple[Grammar, ...] = (
    Grammar("python", "tree_sitter_python", "language", (".py", ".pyi", ".pyw")),
    Grammar("javascript", "tree_sitter_javascript", "language", (".js", ".mjs", ".cjs", ".jsx"),
            ("javascriptreact",)),
    Grammar("typescript", "tree_sitter_typescript", "language_typescript", (".ts", ".mts", ".cts")),
    Grammar("tsx", "tree_sitter_typescript", "language_tsx", (".tsx",), ("typescriptreact",)),
    Grammar("go", "tree_sitter_go", "language", (".go",)),
    Grammar("rust", "tree_sitter_rust", "language", (".rs",)),
    Grammar("java", "tree_sitter_java", "language", (".java",)),
    Grammar("c", "tree_sitter_c", "language", (".c", ".h")),
    Grammar("cpp", "tree_sitter_cpp", "language",
            (".cc", ".cpp", ".cxx", ".hpp", ".hh", ".hxx", ".c++", ".h++"), ("c++",)),
)

_BY_NAME = {g.name: g for g in GRAMMARS} | {a: g for g in GRAMMARS for a in g.aliases}
_BY_EXT = {ext: g for g in GRAMMARS for ext in g.extensions}


def language_for_path(path: str | PurePath) -> str | None:
    """The language name for a file path, from its extension, or None."""
    grammar = _BY_EXT.get(PurePath(path).suffix.lower())
    return grammar.name if grammar else None


def normalize(language_id: str | None, path: str | PurePath | None = None) -> str | None:
    """A supported language name from an LSP language id, falling back to the path."""
    if language_id:
        grammar = _BY_NAME.get(language_id.lower())
        if grammar:
            return grammar.name
    return language_for_path(path) if path is not None else None


@cache
def get_language(name: str) -> Language | None:
    """The tree-sitter Language for a supported name, or None if its wheel is missing."""
    grammar = _BY_NAME.get(name)
    if grammar is None:
        return None
    try:
        module = importlib.import_module(grammar.module)
        return Language(getattr(module, grammar.function)())
    except (ImportError, AttributeError, ValueError) as exc:
        log.warning("tree-sitter grammar for %s unavailable: %s", name, exc)
        return None


def get_parser(name: str | None) -> Parser | None:
    """A fresh parser for the language (parsers are not thread-safe), or None."""
    if not name:
        return None
    language = get_language(name)
    return Parser(language) if language is not None else None


def supported() -> list[str]:
    """Names of languages whose grammar is importable here."""
    return [g.name for g in GRAMMARS if get_language(g.name) is not None]
