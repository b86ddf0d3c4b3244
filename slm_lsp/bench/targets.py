"""Completion benchmark, pure part: targets, masking, scores, statistics.

Nothing here starts a server or imports pygls, so the unit tests exercise the
rules of PROTOCOL.md (which lines are targets, what the editor sends, how a
suggestion is scored) without a model.
"""

from __future__ import annotations

import builtins
import hashlib
import keyword
import math
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tree_sitter import Node

from indexer.languages import get_parser, language_for_path

MIN_CHARS = 10
"""A target line has at least this many characters after its indentation."""

FUNCTION_TYPES: dict[str, frozenset[str]] = {
    "python": frozenset({"function_definition"}),
    "javascript": frozenset({"function_declaration", "generator_function_declaration",
                             "function_expression", "function", "arrow_function",
                             "method_definition"}),
    "go": frozenset({"function_declaration", "method_declaration", "func_literal"}),
    "rust": frozenset({"function_item", "closure_expression"}),
    "java": frozenset({"method_declaration", "constructor_declaration", "lambda_expression"}),
    "c": frozenset({"function_definition"}),
    "cpp": frozenset({"function_definition", "lambda_expression"}),
}
"""Node types whose `body` field is a function body, per tree-sitter language."""
FUNCTION_TYPES["typescript"] = FUNCTION_TYPES["javascript"]
FUNCTION_TYPES["tsx"] = FUNCTION_TYPES["javascript"]

TASKS = ("rest_of_line", "whole_line")
"""Both tasks per target. Rest-of-line runs first: its prefix extends the
whole-line prefix, so the server's typed-along cache cannot serve it from the
whole-line answer (the reverse order would let it)."""


@dataclass(frozen=True)
class Target:
    """One benchmark line: where it is and what the model must produce."""

    path: str
    """Root-relative path with `/`."""
    line: int
    """0-based line number."""
    text: str
    """The whole original line, without the line break."""
    indent: int
    """Characters of indentation (the whole-line task's cursor column)."""
    column: int
    """Cursor column (characters) of the rest-of-line task, inside the line."""
    language: str

    @property
    def code(self) -> str:
        """The line after its indentation, without trailing blanks."""
        return self.text[self.indent:].rstrip()

    def cursor(self, task: str) -> int:
        """The cursor column (characters) for a task."""
        return self.indent if task == "whole_line" else self.column

    def truth(self, task: str) -> str:
        """Ground truth: the rest of the line after the task's cursor."""
        return self.text[self.cursor(task):].rstrip()

    @property
    def key(self) -> str:
        """A stable identifier, `path:line` (1-based)."""
        return f"{self.path}:{self.line + 1}"

    def as_dict(self) -> dict[str, Any]:
        """JSON-able fields."""
        return asdict(self)


# ----- where repository context can help ---------------------------------------------

CHARS_PER_TOKEN = 4.4
"""Characters per token of the default model on the dev set's Python files (measured
on click, attrs and jinja2: 4.38-4.42)."""
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_WORD_END = re.compile(r"[A-Za-z0-9_]+\Z")
_KNOWN = frozenset(keyword.kwlist) | frozenset(dir(builtins)) | {"self", "cls"}


def file_names(files: dict[str, str]) -> dict[str, frozenset[str]]:
    """The identifiers of each file, for `outside_names`."""
    return {path: frozenset(_NAME.findall(text)) for path, text in files.items()}


def outside_names(target: Target, task: str, files: dict[str, str],
                  names: dict[str, frozenset[str]], before_tokens: int,
                  after_tokens: int) -> list[str]:
    """Names the task's answer needs that only another file of the repository has.

    A name is any identifier-shaped word of the answer (words inside string
    literals included). It counts when it is not a keyword or builtin, does not occur in the
    file's own text that the prompt holds (about ``before_tokens`` before the
    cursor and ``after_tokens`` after the line, at `CHARS_PER_TOKEN`), and
    occurs in some other file. Retrieved chunks never come from the target file,
    so these are the tasks where repository context can supply something the
    prompt lacks; on the others the model already sees every name it must write.
    A cursor inside a word makes the whole word the answer's first name (the
    `one` of `None` is the keyword, not a name to look up).
    """
    text = files[target.path]
    lines = text.split("\n")
    start = sum(len(line) + 1 for line in lines[:target.line])
    column = target.cursor(task)
    cursor = start + column
    end = start + len(target.text)
    window = (text[max(0, cursor - int(before_tokens * CHARS_PER_TOKEN)):cursor]
              + "\n" + text[end:end + int(after_tokens * CHARS_PER_TOKEN)])
    local = set(_NAME.findall(window))
    head = _WORD_END.search(target.text[:column])
    answer = target.text[head.start() if head else column:].rstrip()
    found = []
    for name in dict.fromkeys(_NAME.findall(answer)):
        if name in _KNOWN or name in local or len(name) < 2:
            continue
        if any(name in held for path, held in names.items() if path != target.path):
            found.append(name)
    return found


# ----- finding target lines ------------------------------------------------------------


def _walk(node: Node) -> Iterable[Node]:
    """Every node below ``node`` (included), depth first, without recursion."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(current.children))


def _is_string(node: Node) -> bool:
    return "string" in node.type and node.type not in ("string_start", "string_end",
                                                        "string_content")


def candidate_lines(text: str, language: str) -> list[int]:
    """0-based line numbers that qualify as targets in one file.

    A line qualifies when it lies in a function body (below the function's
    first line), is not blank, is not a whole-line comment, is not part of a
    docstring (a statement that is only a string) or of the inside of a
    multi-line string, and has at least ``MIN_CHARS`` characters after its
    indentation. Returns [] for a language without a grammar or function table.
    """
    parser = get_parser(language)
    functions = FUNCTION_TYPES.get(language)
    if parser is None or functions is None:
        return []
    tree = parser.parse(text.encode("utf-8"))
    lines = text.split("\n")
    body: set[int] = set()
    excluded: set[int] = set()
    for node in _walk(tree.root_node):
        if node.type in functions:
            block = node.child_by_field_name("body")
            if block is not None:
                first = max(block.start_point.row, node.start_point.row + 1)
                body.update(range(first, block.end_point.row + 1))
        elif "comment" in node.type:
            row, col = node.start_point.row, node.start_point.column
            if row < len(lines):
                line_bytes = lines[row].encode("utf-8")
                if not line_bytes[:col].strip():  # nothing but indentation before it
                    excluded.update(range(row, node.end_point.row + 1))
        elif node.type == "expression_statement" and node.named_child_count == 1 and (
                _is_string(node.named_children[0])):
            excluded.update(range(node.start_point.row, node.end_point.row + 1))  # docstring
        elif _is_string(node) and node.end_point.row > node.start_point.row:
            excluded.update(range(node.start_point.row + 1, node.end_point.row + 1))
    result = []
    for row in sorted(body - excluded):
        if row >= len(lines):
            continue
        line = lines[row]
        code = line.strip()
        if len(code) >= MIN_CHARS and "\r" not in line and "\t" not in line[:_indent(line)]:
            result.append(row)
    return result


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def read_source(path: Path) -> str | None:
    """A file's text with newlines normalized to `\\n`, or None if not UTF-8 text."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if b"\x00" in data[:8192]:
        return None
    try:
        return data.decode("utf-8").replace("\r\n", "\n")
    except UnicodeDecodeError:
        return None


def source_files(root: Path) -> list[tuple[str, Path]]:
    """Root-relative paths of the files the index would see that have a grammar, sorted."""
    from indexer.walker import Walker

    walker = Walker(root)
    found = []
    for item in walker.walk():
        language = language_for_path(item.rel)
        if language in FUNCTION_TYPES and walker.read(item.path) is not None:
            found.append((item.rel, item.path))
    return sorted(found)


def _column_rng(seed: int, path: str, line: int) -> random.Random:
    """A generator for one line's rest-of-line column, independent of the target count."""
    digest = hashlib.sha256(f"{seed}:{path}:{line}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def make_target(path: str, line: int, text: str, language: str, seed: int) -> Target:
    """The target at one line, with its deterministic rest-of-line column."""
    indent = _indent(text)
    end = len(text.rstrip())
    column = _column_rng(seed, path, line).randint(indent + 1, end - 1)
    return Target(path, line, text, indent, column, language)


def select_targets(files: dict[str, str], count: int, seed: int) -> list[Target]:
    """``count`` targets drawn uniformly from all candidate lines of ``files``.

    ``files`` maps root-relative paths to text. The draw is a seeded shuffle of
    the sorted candidates, so the same seed gives the same targets, and a
    smaller count gives a subset of a larger one. Targets come back sorted by
    file and line (the order the benchmark visits them).
    """
    candidates: list[tuple[str, int, str, str]] = []
    for path in sorted(files):
        language = language_for_path(path)
        if language is None:
            continue
        lines = files[path].split("\n")
        candidates.extend((path, row, lines[row], language)
                          for row in candidate_lines(files[path], language))
    rng = random.Random(seed)
    rng.shuffle(candidates)
    chosen = [make_target(p, row, text, lang, seed) for p, row, text, lang in candidates[:count]]
    return sorted(chosen, key=lambda t: (t.path, t.line))


CROSSFILE_WINDOW = (1536, 256)
"""Prompt tokens before the cursor and after its line that a cross-file target's name must
not appear in (the largest budgets the benchmark compares, so the name is outside every
arm's prompt)."""


def imported_from_repository(files: dict[str, str], path: str) -> dict[str, str]:
    """Names a Python file imports from other files of ``files``: local name -> that file."""
    from ..symbols.imports import imports_of, module_names, relative_module

    modules: dict[str, str] = {}
    for rel in sorted(files, key=lambda r: (r.count("/"), r)):
        for name in module_names(rel):
            modules.setdefault(name, rel)
    found: dict[str, str] = {}
    for imp in imports_of(files[path], "python"):
        if imp.local == "*":
            continue
        dotted = relative_module(path, imp.level, imp.module) if imp.level else imp.module
        source = modules.get(f"{dotted}.{imp.name}" if dotted else imp.name) if imp.name else None
        source = source or modules.get(dotted)  # `from m import name`: the module's file
        if source and source != path:
            found[imp.local] = source
    return found


def _top_level_names(text: str) -> set[str]:
    """Functions, classes and constants defined at the top level of a Python file."""
    return set(re.findall(r"^(?:async\s+def|def|class)\s+([A-Za-z_]\w*)", text, re.M)) | set(
        re.findall(r"^([A-Za-z_]\w*)\s*(?::[^=\n]+)?=", text, re.M))


def crossfile_column(target_text: str, line: int, text: str, imported: dict[str, str],
                     defined: set[str], window: tuple[int, int] = CROSSFILE_WINDOW) -> int | None:
    """The column of the first name on a line that comes from another file (imported) or
    is defined in the same file, where the prompt's own text does not show that name; None
    if there is none. Attribute names (after a dot) and names inside strings do not count."""
    lines = text.split("\n")
    start = sum(len(x) + 1 for x in lines[:line])
    end = start + len(target_text)
    indent = len(target_text) - len(target_text.lstrip())
    for match in _NAME.finditer(target_text, indent):
        name, column = match.group(0), match.start()
        if name not in imported and name not in defined or name in _KNOWN:
            continue
        before = target_text[:column]
        if before.rstrip().endswith(".") or before.count('"') % 2 or before.count("'") % 2:
            continue
        cursor = start + column
        shown = (text[max(0, cursor - int(window[0] * CHARS_PER_TOKEN)):cursor] + "\n"
                 + text[end:end + int(window[1] * CHARS_PER_TOKEN)])
        if re.search(rf"\b{re.escape(name)}\b", shown):
            return None  # the first such name is visible: the model can copy it
        return column
    return None


def select_crossfile_targets(files: dict[str, str], count: int, seed: int) -> list[Target]:
    """``count`` targets the CrossCodeEval way: lines in function bodies whose answer uses a
    name from another file of the repository (through an import) or defined in the same
    file outside the prompt window, cut at that name, where the prompt does not show it.

    Python files only. Deterministic: a seeded shuffle of the sorted candidates; the
    rest-of-line task's cursor is at the name (the whole-line task's at the indentation).
    """
    candidates: list[Target] = []
    for path in sorted(files):
        if language_for_path(path) != "python":
            continue
        text = files[path]
        imported = imported_from_repository(files, path)
        defined = _top_level_names(text)
        lines = text.split("\n")
        for row in candidate_lines(text, "python"):
            column = crossfile_column(lines[row], row, text, imported, defined)
            if column is not None and column < len(lines[row].rstrip()):
                candidates.append(Target(path, row, lines[row], _indent(lines[row]), column,
                                         "python"))
    rng = random.Random(seed)
    rng.shuffle(candidates)
    return sorted(candidates[:count], key=lambda t: (t.path, t.line))


def typing_subset(targets: Sequence[Target], count: int, per_file: int = 2) -> list[Target]:
    """Targets for the typing replay: up to ``per_file`` lines from each file in turn.

    Two lines per file measure both the first request on a newly opened file and
    the first request at a new line of a file that is already open.
    """
    by_file: dict[str, list[Target]] = {}
    for target in targets:
        by_file.setdefault(target.path, []).append(target)
    chosen: list[Target] = []
    for path in sorted(by_file, key=lambda p: (-len(by_file[p]), p)):
        for target in by_file[path][:per_file]:
            if len(chosen) < count:
                chosen.append(target)
    return sorted(chosen, key=lambda t: (t.path, t.line))


# ----- what the editor sends -----------------------------------------------------------


def masked_document(text: str, target: Target, column: int) -> str:
    """The document with the target line cut at ``column``: the line is emptied
    from the cursor on, everything else stays as it is."""
    lines = text.split("\n")
    if lines[target.line] != target.text:
        raise ValueError(f"{target.key} no longer holds the target line")
    lines[target.line] = target.text[:column]
    return "\n".join(lines)


def masked_lines(text: str, targets: Sequence[Target]) -> str:
    """The document with every one of ``targets``' lines emptied after its
    indentation: the typing replay's lines that are still to be typed. The server
    never sees a line before it is typed, not even in a region it warmed early."""
    for target in targets:
        text = masked_document(text, target, target.indent)
    return text


def utf16_column(line: str, column: int) -> int:
    """An LSP (UTF-16) column for a character index into ``line``."""
    return sum(2 if ord(ch) > 0xFFFF else 1 for ch in line[:column])


def leaks(target: Target, context_paths: Iterable[str]) -> bool:
    """True if any path of the retrieval side equals the target's file."""
    return any(p.replace("\\", "/").strip("/") == target.path for p in context_paths)


# ----- scores --------------------------------------------------------------------------


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions of characters)."""
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return len(a)
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1,
                               previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def first_line(text: str) -> str:
    """The text up to its first line break."""
    return text.split("\n", 1)[0]


def edit_similarity(suggestion: str, truth: str) -> float:
    """1 - normalized Levenshtein distance between the first lines (stripped)."""
    a, b = first_line(suggestion).strip(), first_line(truth).strip()
    if not a and not b:
        return 1.0
    return 1.0 - levenshtein(a, b) / max(len(a), len(b))


def exact_match(suggestion: str, truth: str) -> bool:
    """The suggestion's first line equals the rest of the line, both stripped.

    The ground truth is one line; a multi-line suggestion counts when its
    first line is right (``exact_full`` in the results holds the strict form).
    """
    return first_line(suggestion).strip() == truth.strip()


def chars_saved(truth: str, shown: Sequence[str | None]) -> int:
    """Characters the user did not type thanks to the suggestions shown.

    ``shown[k]`` is the suggestion visible after typing ``truth[:k]`` (None when
    nothing was shown). The user accepts the first suggestion whose first line
    is exactly the rest of the line, which saves the characters still to type.
    """
    for k, text in enumerate(shown):
        rest = truth[k:].rstrip()
        if text is not None and rest and first_line(text).rstrip() == rest:
            return len(rest)
    return 0


# ----- statistics ----------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) with linear interpolation; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low, high = math.floor(pos), math.ceil(pos)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def mean(values: Sequence[float]) -> float | None:
    """Arithmetic mean; None for no values."""
    return sum(values) / len(values) if values else None


def bootstrap_diff(
    pairs: Sequence[tuple[float, float]],
    *,
    seed: int = 0,
    resamples: int = 2000,
    level: float = 0.95,
) -> dict[str, Any]:
    """Paired bootstrap interval of mean(b) - mean(a) over units ``(a, b)``.

    A unit is one target (its tasks averaged), resampled with replacement, so
    the two tasks of one line are never treated as independent.
    """
    n = len(pairs)
    result: dict[str, Any] = {"n_units": n, "resamples": resamples, "seed": seed, "level": level,
                              "diff": None, "low": None, "high": None}
    if n == 0:
        return result
    diffs = [b - a for a, b in pairs]
    result["diff"] = sum(diffs) / n
    rng = random.Random(seed)
    means = sorted(sum(diffs[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples))
    tail = (1 - level) / 2
    result["low"] = percentile(means, tail)
    result["high"] = percentile(means, 1 - tail)
    return result
