"""The definitions a cursor's code refers to, resolved the way the code itself finds them.

For a cursor in a file, ``Resolver.around`` looks at the names of the file, nearest to
the cursor first, and returns the definitions they refer to that the prompt does not
show: names imported from other files of the repository (through the file's imports,
Python modules and packages resolved to files, relative JS/TS imports and C includes to
the files they name), names defined in the same file outside the prompt window, the
enclosing class when the code uses ``self.``/``this.``, and the bases of the classes
found, in their own files. Go, Rust and Java import packages rather than files: there a
name is looked up by definition across the workspace, only when few files define it.

Nothing here guesses by similarity: a name that does not resolve is left out, so a call
``PRICE_LIST.get(...)`` never brings in an unrelated method called ``get``.
"""

from __future__ import annotations

import bisect
import builtins
import keyword
import math
import os
import re
import threading
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, replace

from indexer.languages import language_for_path

from .definitions import innermost
from .imports import Import, imports_of, module_names, relative_module, script_candidates
from .stubs import module_constants
from .syntax import MAX_PARSE_CHARS, WORD_RE, Definition
from .textcache import text_cache
from .tree import SourceTree

KNOWN = frozenset(keyword.kwlist) | frozenset(dir(builtins)) | {
    "self", "cls", "this", "super", "true", "false", "null", "nil", "None", "int", "str",
    "string", "void", "const", "let", "var", "func", "return", "import", "from", "new"}
BY_NAME_LANGUAGES = frozenset({"go", "rust", "java"})
CLASS_KINDS = frozenset({"class", "struct", "interface", "trait", "record", "enum"})
"""Definition kinds that have members (a stub lists them)."""
NEAR_LINES = 3
"""Names used this close to the cursor come first: the calls being written."""
MAX_FOUND = 60
"""Definitions resolved per cursor at most (the budget takes far fewer)."""
MAX_MEMBERS = 12
"""Members kept per class stub: the ones used nearest the cursor."""
MAX_BY_NAME = 2
"""A name looked up across the workspace counts only if at most this many definitions have it."""
_SELF = re.compile(r"\b(?:self|this)\.")
_DOTTED = re.compile(r"\b([A-Za-z_][A-Za-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_]*)")


@dataclass(frozen=True)
class Found:
    """A definition the cursor's code refers to, and how it was found."""

    definition: Definition
    via: str
    """``import``, ``same file``, ``enclosing class``, ``base`` or ``by name``."""
    distance: int
    """Lines between the cursor and the nearest use of the name (0: the cursor's line)."""
    members: tuple[Definition, ...] = ()
    """For a class: its methods and attributes (same file)."""
    shown: bool = True
    """Whether the prompt window shows the name in use (else a compact stub serves: the
    model mostly needs to know that the name exists and how to call it)."""


@text_cache(maxsize=64, max_chars=4 << 20)
def _imports(text: str, language: str | None) -> tuple[Import, ...]:
    return tuple(imports_of(text, language))


class Resolver:
    """Resolves the names around a cursor to definitions of the workspace."""

    def __init__(self, tree: SourceTree) -> None:
        self.tree = tree
        self._lock = threading.Lock()
        self._modules: dict[str, list[str]] = {}
        self._listing: list[str] | None = None

    # ----- files -------------------------------------------------------------------------

    def rel(self, path: str) -> str:
        root = self.tree.root
        return os.path.relpath(path, root).replace(os.sep, "/") if root else os.path.basename(path)

    def _module_map(self) -> dict[str, list[str]]:
        """Dotted Python module names -> absolute paths (every suffix of each file's path)."""
        listing = self.tree.list_files()
        with self._lock:
            if listing is not self._listing:
                modules: dict[str, list[str]] = {}
                for path in listing:
                    for name in module_names(self.rel(path)):
                        modules.setdefault(name, []).append(path)
                for paths in modules.values():
                    paths.sort(key=lambda p: (p.count(os.sep), p))
                self._modules, self._listing = modules, listing
            return self._modules

    def module_file(self, dotted: str) -> str | None:
        """The repository file of a Python module (shortest path first), or None."""
        paths = self._module_map().get(dotted)
        return paths[0] if paths else None

    def _files_of(self, imp: Import, importer: str, language: str) -> list[str]:
        if language == "python":
            dotted = relative_module(self.rel(importer), imp.level, imp.module) if imp.level \
                else imp.module
            found = []
            if imp.name and imp.name != "*":
                sub = self.module_file(f"{dotted}.{imp.name}" if dotted else imp.name)
                if sub:
                    found.append(sub)  # `from pkg import module`
            module = self.module_file(dotted) if dotted else None
            return ([module] if module else []) + found
        root = self.tree.root or ""
        listed = set(self.tree.list_files())
        return [p for p in (os.path.join(root, c) for c in script_candidates(
            self.rel(importer), imp.module, language)) if os.path.abspath(p) in listed]

    def definitions(self, path: str) -> list[Definition]:
        """A file's definitions, with a Python file's module constants."""
        text = self.tree.text_of(path)
        if text is None:
            return []
        defs = self.tree.definitions_in(path, text)
        if path.endswith(".py"):
            defs = defs + module_constants(text, path)
        return defs

    # ----- the cursor --------------------------------------------------------------------

    def around(self, path: str, text: str, language: str | None, line: int,
               window: tuple[int, int]) -> list[Found]:
        """Definitions the code around ``line`` refers to, outside ``window`` (first and
        last line the prompt shows), nearest use first, each once."""
        language = language or language_for_path(path)
        if language is None or len(text) > MAX_PARSE_CHARS:
            return []  # no grammar, or a file too large to parse (generated code, data)
        here = self.definitions_in(path, text)
        imports = {imp.local: imp for imp in _imports(text, language)}
        stars = [imp for imp in imports.values() if imp.local == "*"]
        lines = text.split("\n")
        out: list[Found] = []
        seen: set[tuple[str, int]] = set()

        top: dict[str, Definition] = {}
        for d in here:  # the file's own top-level names (the first definition of each)
            if d.name == d.qualname:
                top.setdefault(d.name, d)
        ranked, shown = _names_by_priority(lines, line, window, set(imports), path)
        near = dict(ranked)
        bases: list[Found] = []

        def add(found: Found) -> None:
            key = (found.definition.path, found.definition.start_line)
            if key in seen:
                return
            seen.add(key)
            out.append(Found(found.definition, found.via, found.distance,
                             _rank_members(found.members, near), found.shown))
            if found.definition.kind == "class":
                bases.extend(self._bases(found))

        enclosing = innermost(here, line, functions_only=True)
        owner = _owner_class(here, enclosing)
        if owner is not None and not _inside(owner, window) and _uses_self(lines, line):
            add(Found(owner, "enclosing class", 0, _members(here, owner)))
        for name, distance in ranked:
            if len(out) >= MAX_FOUND:
                break
            visible = name in shown or distance <= NEAR_LINES
            if "." in name:  # `module.member`, where `module` is imported
                head, member = name.split(".", 1)
                for found in self._imported(imports[head], path, language, lines, head,
                                            distance, member):
                    add(replace(found, shown=visible))
                continue
            own = top.get(name)
            if own is not None:
                if not _inside(own, window) and own is not enclosing:
                    add(Found(own, "same file", distance, _members(here, own), visible))
                continue
            imp = imports.get(name)
            if imp is not None:
                for found in self._imported(imp, path, language, lines, name, distance):
                    add(replace(found, shown=visible))
                continue
            for imp in stars:
                for found in self._imported(Import(name, imp.module, name, imp.level), path,
                                            language, lines, name, distance):
                    add(replace(found, shown=visible))
            if language in BY_NAME_LANGUAGES and name[:1].isupper() or language in BY_NAME_LANGUAGES \
                    and _is_called(lines, name):
                for found in self._by_name(name, path, distance):
                    add(replace(found, shown=visible))
        while bases and len(out) < MAX_FOUND:  # bases after everything named in the file
            add(bases.pop(0))
        return out

    def lookup(self, path: str, text: str, language: str | None, name: str,
               qualifier: str | None) -> list[Definition] | None:
        """The definitions a use of ``name`` (after ``qualifier.``, if any) in a file can
        mean, as the language finds them; [] when it is known to be nothing of the
        repository (an external module's function, a method of a plain value); None when
        this cannot tell (other languages, ``self.``, a local of unknown type), and the
        caller may rank same-named definitions instead."""
        if language != "python":
            return None
        here = self.definitions_in(path, text)
        imports = {imp.local: imp for imp in _imports(text, language)}
        head = WORD_RE.match(qualifier or "")
        if head is None:
            local = [d for d in here if d.qualname == name]
            if local:
                return local
            if name in imports:
                return self._imported_defs(imports[name], path, name)
            return None
        q = head.group(0)
        if q in ("self", "cls", "super"):
            return None
        owner: list[Definition] = []
        if q in imports:
            imp = imports[q]
            files = self._files_of(imp, path, language)
            if not files:
                return []  # an external module or package: not the repository's
            modules = [f for f in files if imp.name in (None, "*") or
                       _module_of(self.rel(f)) == imp.name]
            if modules:
                return [d for d in self.definitions(modules[0]) if d.qualname == name]
            owner = [d for d in self.definitions(files[0]) if d.qualname == imp.name]
        else:
            owner = [d for d in here if d.qualname == q]
        if owner and owner[0].kind == "constant":
            call = re.match(r"[A-Za-z_]\w*\s*(?::[^=]*)?=\s*([A-Za-z_][\w.]*)\s*\(",
                            owner[0].text)
            if call is None:
                return []  # a dict, a list, a number...: its methods are not ours
            return self._members_named(path, text, call.group(1).split(".")[-1], name)
        if owner and owner[0].kind == "class":
            return [d for d in _members(self.definitions(owner[0].path), owner[0]) if d.name == name]
        return None

    def _members_named(self, path: str, text: str, cls: str, name: str) -> list[Definition]:
        found = self.lookup(path, text, "python", cls, None) or []
        classes = [d for d in found if d.kind == "class"]
        if not classes:
            return []
        return [d for d in _members(self.definitions(classes[0].path), classes[0]) if d.name == name]

    def definitions_in(self, path: str, text: str) -> list[Definition]:
        defs = self.tree.definitions_in(path, text)
        return defs + module_constants(text, path) if path.endswith(".py") else defs

    def _imported_defs(self, imp: Import, importer: str, name: str) -> list[Definition]:
        files = self._files_of(imp, importer, "python")
        if not files:
            return []
        out = []
        for file in files:
            if imp.name and imp.name != "*" and _module_of(self.rel(file)) != imp.name:
                out += [d for d in self.definitions(file) if d.qualname == imp.name]
        return out

    def _imported(self, imp: Import, importer: str, language: str, lines: list[str],
                  name: str, distance: int, member: str | None = None) -> Iterable[Found]:
        """The definitions an import brings in: the named member, or a module's ``member``."""
        for file in self._files_of(imp, importer, language):
            defs = self.definitions(file)
            wanted = imp.name if imp.name and imp.name != "*" else None
            is_module = wanted is None or _module_of(self.rel(file)) == wanted
            if not is_module:
                hits = [d for d in defs if d.qualname == wanted]
                for d in hits[:1]:
                    yield Found(d, "import", distance, _members(defs, d))
                if hits:
                    return
                continue
            # A module itself brings in nothing: its members come as `module.member` names.
            for wanted_member in [member] if member else []:
                for d in [d for d in defs if d.qualname == wanted_member][:1]:
                    yield Found(d, "import", distance, _members(defs, d))
            return

    def _by_name(self, name: str, importer: str, distance: int) -> Iterable[Found]:
        defs = [d for d in self.tree.find(name) if d.path != importer and d.qualname == name
                or d.path != importer and d.kind in ("class", "struct", "interface", "type", "enum")
                and d.name == name]
        if 0 < len(defs) <= MAX_BY_NAME:
            for d in defs:
                yield Found(d, "by name", distance, _members(self.definitions(d.path), d))

    def _bases(self, found: Found) -> list[Found]:
        """The classes ``found`` (a class) derives from, resolved in its own file."""
        d = found.definition
        bases = _base_names(d.signature)
        text = self.tree.text_of(d.path) if bases and d.language == "python" else None
        if text is None:
            return []
        imports = {imp.local: imp for imp in _imports(text, d.language)}
        here = self.definitions(d.path)
        out: list[Found] = []
        for base in bases:
            local = [x for x in here if x.qualname == base and x.kind == "class"]
            if local:
                out.append(Found(local[0], "base", found.distance, _members(here, local[0])))
            elif base in imports:
                out += [Found(c.definition, "base", c.distance, c.members) for c in self._imported(
                    imports[base], d.path, d.language, text.split("\n"), base, found.distance)]
        return out


_RESOLVERS: weakref.WeakKeyDictionary[SourceTree, Resolver] = weakref.WeakKeyDictionary()
_RESOLVERS_LOCK = threading.Lock()


def resolver_for(tree: SourceTree) -> Resolver:
    """The one ``Resolver`` of a source tree (hover, code actions and completions share it)."""
    with _RESOLVERS_LOCK:
        found = _RESOLVERS.get(tree)
        if found is None:
            found = _RESOLVERS[tree] = Resolver(tree)
        return found


def _module_of(rel: str) -> str | None:
    """A Python file's own module name (``pkg/io.py`` -> ``io``); None for other files."""
    names = module_names(rel)
    return names[0] if names else None


def _inside(d: Definition, window: tuple[int, int]) -> bool:
    """True if the prompt shows the definition's first line."""
    return window[0] <= d.start_line <= window[1]


def _owner_class(defs: list[Definition], function: Definition | None) -> Definition | None:
    if function is None or "." not in function.qualname:
        return None
    owner = function.qualname.rsplit(".", 1)[0]
    return next((d for d in defs if d.qualname == owner and d.kind in CLASS_KINDS), None)


def _members(defs: Iterable[Definition], d: Definition) -> tuple[Definition, ...]:
    if d.kind not in CLASS_KINDS:
        return ()
    prefix = d.qualname + "."
    return tuple(m for m in defs if m.qualname.startswith(prefix)
                 and "." not in m.qualname[len(prefix):])


def _rank_members(members: tuple[Definition, ...], near: dict[str, int]) -> tuple[Definition, ...]:
    """A class's members, those used nearest the cursor first, at most ``MAX_MEMBERS``;
    attributes and ``__init__`` (where attributes are set) count as used."""
    def key(item: tuple[int, Definition]) -> tuple[int, int]:
        index, m = item
        used = near.get(m.name)
        if m.kind == "attribute" or m.name == "__init__":
            used = -1
        return (used if used is not None else 1 << 20, index)
    kept = sorted(enumerate(members), key=key)[:MAX_MEMBERS]
    return tuple(m for _, m in sorted(kept, key=lambda item: item[0]))  # back in file order


def _uses_self(lines: list[str], line: int) -> bool:
    return any(_SELF.search(lines[i]) for i in range(max(0, line - 6), min(len(lines), line + 1)))


@dataclass(frozen=True)
class _Line:
    words: tuple[str, ...]
    names: tuple[str, ...]
    """The words that may name a definition (not keywords, builtins or single letters)."""
    dotted: tuple[tuple[str, str], ...]
    """``a.b`` pairs as (``a.b``, ``a``)."""


_LINES: dict[str, _Line] = {}
"""Per line of text, its words. A file's lines barely change between requests, so a cold
request in an open file scans only the lines typed since the last."""
MAX_LINES = 16_000
"""Lines kept, about 11 MB (0.7 KB a line with its words; measured on the dev set); the
cache is emptied when full."""


def _line(text: str) -> _Line:
    found = _LINES.get(text)
    if found is None:
        if len(_LINES) >= MAX_LINES:
            _LINES.clear()
        words = tuple(WORD_RE.findall(text))
        found = _LINES[text] = _Line(
            words, tuple(w for w in words if len(w) > 1 and w not in KNOWN),
            tuple((m.group(0), m.group(1)) for m in _DOTTED.finditer(text)) if "." in text else ())
    return found


def _row_names(found: _Line, imported: frozenset[str]) -> tuple[str, ...]:
    """A line's names; ``module.member`` counts as a name of its own when ``module`` is imported."""
    if imported and found.dotted:
        return found.names + tuple(whole for whole, head in found.dotted if head in imported)
    return found.names


@dataclass
class _Rows:
    """Every name's rows in one text of a file (ascending), and each row's words."""

    lines: list[str]
    imported: frozenset[str]
    rows_of: dict[str, list[int]]
    words: list[tuple[str, ...]]

    @classmethod
    def of(cls, lines: list[str], imported: frozenset[str]) -> _Rows:
        rows_of: dict[str, list[int]] = {}
        words: list[tuple[str, ...]] = []
        for row, text in enumerate(lines):
            found = _line(text)
            words.append(found.words)
            for name in _row_names(found, imported):
                rows = rows_of.get(name)
                if rows is None:
                    rows_of[name] = [row]
                elif rows[-1] != row:
                    rows.append(row)
        return cls(lines, imported, rows_of, words)

    def follow(self, lines: list[str]) -> bool:
        """Become the rows of ``lines``, a text with as many lines that differs in at most
        `MAX_ROWS_CHANGED` of them (typing along a line); False when it does not qualify."""
        if len(lines) != len(self.lines):
            return False
        changed = [row for row, (a, b) in enumerate(zip(self.lines, lines, strict=True)) if a != b]
        if len(changed) > MAX_ROWS_CHANGED:
            return False
        for row in changed:
            for name in set(_row_names(_line(self.lines[row]), self.imported)):
                rows = self.rows_of[name]
                del rows[bisect.bisect_left(rows, row)]
                if not rows:
                    del self.rows_of[name]
            found = _line(lines[row])
            self.words[row] = found.words
            for name in dict.fromkeys(_row_names(found, self.imported)):
                bisect.insort(self.rows_of.setdefault(name, []), row)
        self.lines = lines
        return True


MAX_ROWS_CHANGED = 64
"""More changed lines than this and a file's rows are counted again from the start."""
ROW_FILES = 4
"""Files whose rows are kept from one request to the next."""
_ROWS: dict[str, _Rows] = {}
_ROWS_LOCK = threading.Lock()


def _rows_of(key: str | None, lines: list[str], imported: frozenset[str]) -> _Rows:
    """The rows of ``lines``: those kept for ``key`` (a file) brought up to date when the
    text differs in a few lines of the same count, else counted afresh (and kept). Call
    with `_ROWS_LOCK` held: the result is shared."""
    rows = _ROWS.pop(key, None) if key is not None else None
    if rows is None or rows.imported != imported or not rows.follow(lines):
        rows = _Rows.of(lines, imported)
    if key is not None:
        _ROWS[key] = rows  # the most recent last
        while len(_ROWS) > ROW_FILES:
            del _ROWS[next(iter(_ROWS))]
    return rows


def _names_by_priority(lines: list[str], line: int, window: tuple[int, int],
                       imported: set[str] = frozenset(),  # type: ignore[assignment]
                       key: str | None = None) -> tuple[list[tuple[str, int]], set[str]]:
    """The file's identifiers (not keywords or builtins) with the distance in lines from
    ``line`` to their nearest occurrence, in the order they are worth resolving: those
    used within ``NEAR_LINES`` of the cursor (the calls being written), then those the
    prompt window does not show at all (imported or defined far away: the model cannot
    know them otherwise), then the rest of the window's, each group nearest first.
    ``key`` (the file's path) keeps the file's rows for its next request."""
    with _ROWS_LOCK:
        rows = _rows_of(key, lines, frozenset(imported))
        return _rank_names(rows.rows_of, rows.words, line, window)


def _rank_names(rows_of: dict[str, list[int]], words: list[tuple[str, ...]], line: int,
                window: tuple[int, int]) -> tuple[list[tuple[str, int]], set[str]]:
    first, last = window
    best: dict[str, int] = {}
    shown: set[str] = set()
    unshown: dict[str, list[int]] = {}
    for name, rows in rows_of.items():
        at = bisect.bisect_left(rows, line)  # the nearest use is at or just before ``at``
        if at == len(rows):
            best[name] = line - rows[-1]
        elif at == 0 or rows[at] - line < line - rows[at - 1]:
            best[name] = rows[at] - line
        else:
            best[name] = line - rows[at - 1]
        inside = bisect.bisect_left(rows, first)
        if inside < len(rows) and rows[inside] <= last:
            shown.add(name)
        else:
            unshown[name] = rows
    score = _use_similarity(words, line, unshown)

    def tier(item: tuple[str, int]) -> tuple[int, float, int, str]:
        name, distance = item
        group = 0 if distance <= NEAR_LINES else 1 if name not in shown else 2
        return (group, -score.get(name, 0.0), distance, name)

    return sorted(best.items(), key=tier), shown


def _use_similarity(words: list[tuple[str, ...]], line: int, rows_of: dict[str, list[int]]
                    ) -> dict[str, float]:
    """For names the prompt does not show: how much the code where each is used looks like
    the code being written. The words of the lines around each use (one line either side)
    are compared with the words of the cursor's last ``NEAR_LINES`` + 1 lines, each shared
    word counting by its rarity in the file (idf). A name used in code like the cursor's is
    likely the one needed next; nearness alone ranks a long file's hundreds of imported and
    far-away names no better than by chance.

    The cursor's words are numbered, so the words a row shares with them are the bits of
    one integer, and the lines around a use are an OR of three."""
    here = {w for row in words[max(0, line - NEAR_LINES):line + 1] for w in row}
    if not here or not rows_of:
        return {}
    index = {w: i for i, w in enumerate(here)}  # any numbering: the sums below are exact
    masks = []
    frequency = [0] * len(here)
    for row in words:
        mask = 0
        for w in here.intersection(row):  # a row shares few words, often none
            i = index[w]
            mask |= 1 << i
            frequency[i] += 1
        masks.append(mask)
    rarity = [math.log(len(words) / (1 + n)) for n in frequency]
    nearby = [masks[max(0, i - 1)] | m | (masks[i + 1] if i + 1 < len(masks) else 0)
              for i, m in enumerate(masks)]
    by_mask: dict[int, float] = {0: 0.0}
    scores: dict[str, float] = {}
    for name, rows in rows_of.items():
        seen = 0
        for at in rows:
            seen |= nearby[at]
        if name in index:
            seen &= ~(1 << index[name])
        value = by_mask.get(seen)
        if value is None:  # exact sum: the same in any order
            value = by_mask[seen] = math.fsum(
                rarity[i] for i in range(len(here)) if seen >> i & 1)
        scores[name] = value
    return scores


def _is_called(lines: list[str], name: str) -> bool:
    pattern = re.compile(rf"\b{re.escape(name)}\s*\(")
    return any(pattern.search(text) for text in lines)


def _base_names(signature: str) -> list[str]:
    header = signature.split("\n")[-1]
    match = re.search(r"class\s+\w+\s*\((.*)\)", header)
    if not match:
        return []
    return [b.strip().split("[")[0] for b in match.group(1).split(",")
            if b.strip() and "=" not in b and b.strip().split("[")[0].isidentifier()]
