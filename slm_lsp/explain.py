"""The explanation pipeline: hover text, selection explanations and docstrings.

No protocol types here. A hover first resolves the symbol under the cursor with
tree-sitter (``symbols``) to a definition somewhere in the workspace; the header
(where it is defined, its signature) needs no model. The explanation below it
comes from the local model, prompted with the definition, the function the hover
happened in and the signatures of the definition's callees, and is then checked:
every code name it mentions must exist in that context or in the repository.
Answers are cached by a hash of exactly what was explained, in memory and on disk
per workspace, so an unchanged definition is explained once.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import keyword
import logging
import os
import re
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prompts.explain import Message, prompt_version, render_chat, task_messages
from prompts.fim import all_special_texts

from .backends.base import BackendError, Cancelled, ModelBackend
from .memory import trim
from .settings import ExplainSettings, ModelSettings
from .symbols import (
    WORD_RE,
    Definition,
    DocSite,
    SourceTree,
    SymbolRef,
    call_sites,
    calls_in,
    doc_site,
    imported_names,
    innermost,
    symbol_at,
)

log = logging.getLogger(__name__)

EXPLAIN_CTX = 4096
"""Context size of the explanation model's own KV cache."""
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
        candidates = _rank(tree.find(ref.name), ref, path, site, text)
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


def _summary_line(d: Definition) -> str:
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
        if name == definition.name or keyword.iskeyword(name) or name in _BUILTINS:
            continue
        if _external(tree, qualifier, imports):
            continue
        found = [d for d in tree.find(name) if d.kind != "attribute"]
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


def _short(signature: str, limit: int = 100) -> str:
    """A callee's signature on one line, without decorators, cut at ``limit`` characters."""
    line = " ".join(x for x in signature.split("\n") if not x.lstrip().startswith(("@", "#[")))
    line = " ".join(line.split())
    return line if len(line) <= limit else line[:limit - 3].rstrip() + "..."


def _dedent(text: str) -> str:
    lines = text.split("\n")
    indents = [len(x) - len(x.lstrip()) for x in lines if x.strip()]
    cut = min(indents) if indents else 0
    return "\n".join(x[cut:] for x in lines)


def _clip(text: str, limit: int) -> str:
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


# -- the explanation cache ------------------------------------------------------------


class ExplainCache:
    """Explanations by content hash: an in-memory LRU over one JSON file per entry."""

    def __init__(self, directory: Path | None, size: int = 512) -> None:
        self.directory = directory
        self._memory: OrderedDict[str, str] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def _file(self, key: str) -> Path | None:
        return self.directory / key[:2] / f"{key}.json" if self.directory else None

    def get(self, key: str) -> str | None:
        """The cached text for ``key``, or None."""
        with self._lock:
            if key in self._memory:
                self._memory.move_to_end(key)
                return self._memory[key]
        file = self._file(key)
        if file is None:
            return None
        try:
            text = json.loads(file.read_text(encoding="utf-8"))["text"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        self._remember(key, str(text))
        return str(text)

    def put(self, key: str, text: str, meta: dict[str, Any] | None = None, *,
            persist: bool = True) -> None:
        """Remember ``text`` for ``key`` in memory and (if ``persist``) atomically on disk."""
        self._remember(key, text)
        file = self._file(key)
        if file is None or not persist:
            return
        try:
            file.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=".tmp-", suffix=".json")
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump({"text": text, "created": time.time(), **(meta or {})}, out)
            os.replace(tmp, file)
        except OSError as exc:
            log.warning("cannot write explanation cache %s: %s", file, exc)

    def _remember(self, key: str, text: str) -> None:
        with self._lock:
            self._memory[key] = text
            self._memory.move_to_end(key)
            while len(self._memory) > self._size:
                self._memory.popitem(last=False)


def content_key(*parts: str) -> str:
    """SHA-256 over the parts (what was explained, how, and by which model)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8", errors="surrogatepass"))
        digest.update(b"\0")
    return digest.hexdigest()


# -- the hallucination guard -----------------------------------------------------------

_BUILTINS = frozenset(dir(builtins)) | frozenset(keyword.kwlist) | frozenset({
    "self", "cls", "this", "super", "true", "false", "null", "nil", "undefined", "None",
    "void", "int", "float", "double", "char", "bool", "boolean", "string", "String", "str",
    "Object", "Array", "Map", "Set", "Promise", "Error", "console", "async", "await",
    "fn", "impl", "struct", "enum", "trait", "mut", "func", "var", "let", "const", "new",
    "return", "static", "public", "private", "protected", "def", "class", "function",
    "dict", "list", "tuple", "set", "Result", "Option", "Some", "Ok", "Err", "Vec",
    "__init__", "__call__", "__enter__", "__exit__", "__iter__", "__next__", "__repr__",
    "__str__", "__eq__", "__hash__", "__len__", "__getitem__", "__setitem__", "__name__",
})
_ABBREVIATIONS = frozenset({"e.g", "i.e", "etc", "vs", "a.k.a"})
_SPAN_RE = re.compile(r"`([^`\n]+)`")
_QUOTED_RE = re.compile(r"'[^']*'|\"[^\"]*\"")
_CODE_LIKE_RE = re.compile(
    r"\b[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+(?:\(\))?"  # Foo.bar, os.path.join()
    r"|\b[A-Za-z_]\w*\([^()\s]*\)"  # foo(), foo(x)
    r"|\b_*[a-z][a-z0-9]*_[a-z0-9_]+\b"  # snake_case
    r"|\b_*[a-z]+[A-Z]\w*"  # camelCase
    r"|\b[A-Z][a-z0-9]+[A-Z]\w*"  # PascalCase with an inner capital
)
_SENTENCE_RE = re.compile(r"(?<=[.!?])\s+(?=[A-Z`*_\"'(\[])|\n+")


@dataclass
class Guarded:
    """The explanation after the guard, and what it removed."""

    text: str
    removed: list[str] = field(default_factory=list)


def code_names(sentence: str) -> list[str]:
    """Identifiers the sentence names as code (backticked spans and code-like tokens)."""
    names: list[str] = []
    for span in _SPAN_RE.findall(sentence):
        names += WORD_RE.findall(_QUOTED_RE.sub("", span))
    prose = _SPAN_RE.sub(" ", sentence)
    for token in _CODE_LIKE_RE.findall(prose):
        if token.lower().rstrip(".") in _ABBREVIATIONS:
            continue
        names += WORD_RE.findall(token.split("(", 1)[0] if "(" in token and not
                                 token.endswith("()") else token)
    return [n for n in names if not n.isdigit()]


def guard(text: str, known: Callable[[str], bool]) -> Guarded:
    """Drop every sentence that names code not in ``known`` (context or repository)."""
    kept: list[str] = []
    removed: list[str] = []
    for sentence in _SENTENCE_RE.split(text):
        if not sentence.strip():
            continue
        unknown = [n for n in code_names(sentence) if n not in _BUILTINS and not known(n)]
        if unknown:
            removed += unknown
            log.debug("guard dropped %r (unknown %s)", sentence, unknown)
        else:
            kept.append(sentence.strip())
    return Guarded(" ".join(kept), removed)


# -- cleaning model output ---------------------------------------------------------------

_SPECIALS = all_special_texts() + ("<|im_start|>", "<|im_end|>", "<|endoftext|>")


def clean_explanation(text: str, *, complete: bool = True, max_sentences: int = 5) -> str:
    """Prose only: no fences, headings or special tokens; whole sentences, a few of them."""
    for special in _SPECIALS:
        text = text.replace(special, "")
    text = re.sub(r"```.*?(```|\Z)", " ", text, flags=re.S)
    text = re.sub(r"^\s*#+\s*", "", text, flags=re.M)
    text = re.sub(r"^\s*(?:[-*]|\d+\.)\s+", "", text, flags=re.M)
    text = " ".join(text.split())
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", text) if s]
    if not complete and sentences and not sentences[-1].endswith((".", "!", "?", ":")):
        sentences = sentences[:-1]  # cut off mid-sentence by the time budget
    return " ".join(sentences[:max_sentences]).strip()


_SENTENCE_END_RE = re.compile(r"(?<!\be\.g)(?<!\bi\.e)[.!?](?=\s)")
SENTENCES = {"symbol": 3, "selection": 5, "docstring": 1}
"""Generation stops after this many sentences per task (short answers come back fast)."""


class _StopRule:
    """Stop at a code fence, a run of blank lines, or when the generation budget is spent.

    The budget counts from the first generated token, so a slow prompt evaluation
    (a busy machine) still leaves time for a sentence; the request's own timeout
    bounds the whole.
    """

    def __init__(self, budget_s: float | None, max_sentences: int = 0) -> None:
        self.budget_s = budget_s
        self.max_sentences = max_sentences
        self.started: float | None = None
        self.timed_out = False

    def __call__(self, text: str) -> int | None:
        for marker in ("\n```", "\n\n\n", "<|"):
            at = text.find(marker)
            if at >= 0 and text[:at].strip():
                return at
        if self.max_sentences:  # a sentence has ended once the token after its stop came
            ends = [m.end() for m in _SENTENCE_END_RE.finditer(text)]
            if len(ends) >= self.max_sentences:
                return ends[self.max_sentences - 1]
        now = time.monotonic()
        self.started = self.started or now
        if self.budget_s is not None and now - self.started > self.budget_s:
            self.timed_out = True
            return len(text)
        return None


# -- docstrings ---------------------------------------------------------------------


def _wrap(text: str, width: int) -> list[str]:
    lines: list[str] = []
    current = ""
    for word in text.split():
        if current and len(current) + 1 + len(word) > width:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    return lines + ([current] if current else [])


def skeleton(site: DocSite, name: str) -> list[str]:
    """The deterministic docstring body used when the model cannot write one."""
    lines = [f"TODO: describe {name}."]
    if site.params and site.style == "python":
        lines += ["", "Args:"] + [f"    {p}: TODO." for p in site.params]
    elif site.params and site.style in ("jsdoc", "javadoc", "c"):
        lines += [""] + [f"@param {p} TODO." for p in site.params]
    return lines


def format_docstring(site: DocSite, body: Sequence[str]) -> str:
    """``body`` lines as the language's documentation comment, indented for ``site``."""
    ind = site.indent
    if site.style == "python":
        if len(body) == 1 and len(ind) + len(body[0]) + 6 <= 88:
            return f'{ind}"""{body[0]}"""\n'
        return f'{ind}"""' + "\n".join(f"{ind}{x}" if x and i else x for i, x in enumerate(body)) \
            + f'\n{ind}"""\n'
    if site.style == "go":
        return "".join(f"{ind}//{' ' if x else ''}{x}\n" for x in body)
    if site.style == "rust":
        return "".join(f"{ind}///{' ' if x else ''}{x}\n" for x in body)
    inner = "".join(f"{ind} *{' ' if x else ''}{x}\n" for x in body)
    return f"{ind}/**\n{inner}{ind} */\n"


def first_sentence(text: str) -> str:
    """The first sentence of ``text``, without surrounding quotes."""
    text = text.strip().lstrip("\"'`").strip()
    match = re.match(r"(.+?[.!?])[\"'`]?(?:\s|$)", text, flags=re.S)
    return " ".join((match.group(1) if match else text).split())


def summary_lines(site: DocSite, name: str, summary: str) -> list[str]:
    """A model-written summary wrapped for the comment (Go's starts with the name)."""
    summary = summary.strip().strip('"').strip()
    if site.style == "go" and not summary.startswith(name):
        summary = f"{name} {summary[:1].lower()}{summary[1:]}"
    if not summary.endswith((".", "!", "?")):
        summary += "."
    return _wrap(summary, max(40, 88 - len(site.indent) - 4))


@dataclass(frozen=True)
class DocEdit:
    """Text to insert at the start of ``line`` (0-based)."""

    line: int
    text: str
    generated: bool
    """True when the model wrote it, False for the fallback skeleton."""


# -- the model ---------------------------------------------------------------------


def _file_identity(path: Path) -> str:
    try:
        return f"{path.name}:{path.stat().st_size}"
    except OSError:
        return path.name


class ModelRouter:
    """The backend that explains: a dedicated model when configured, else a second
    context on the completion model's weights (its KV cache stays untouched)."""

    def __init__(self, shared: Callable[[float], ModelBackend | None],
                 loader: Callable[[Path], ModelBackend] | None = None,
                 n_ctx: int = EXPLAIN_CTX, shared_path: Path | None = None) -> None:
        self._shared = shared
        self._shared_path = shared_path
        """The completion model's file, naming it in cache keys before it is loaded."""
        self._loader = loader or self._load_llama
        self.n_ctx = n_ctx
        self._lock = threading.Lock()
        self._path: Path | None = None
        self._problem: str | None = None
        self._dedicated: ModelBackend | None = None
        self._loading: threading.Event | None = None
        self._spawned: tuple[int, ModelBackend] | None = None
        self._threads = 0
        self.release_after_s = float(ExplainSettings.release_after_s)
        self._leases = 0
        self._timer: threading.Timer | None = None

    def _load_llama(self, path: Path) -> ModelBackend:
        from .backends.llama import LlamaBackend

        return LlamaBackend(path, n_ctx=self.n_ctx, n_threads=self._threads)

    def configure(self, explain: ExplainSettings, model: ModelSettings) -> None:
        """Pick the explanation model; a changed choice drops the old one."""
        from .models import ModelError, resolve_model_path

        path: Path | None = None
        problem: str | None = None
        if explain.model_path or explain.model_name:
            try:
                path = resolve_model_path(explain.model_name, explain.model_path)
            except ModelError as exc:
                problem = str(exc)
        with self._lock:
            self._threads = model.threads
            self.release_after_s = float(explain.release_after_s)
            if path == self._path and problem == self._problem:
                return
            old, self._dedicated, self._loading = self._dedicated, None, None
            self._path, self._problem = path, problem
        if old is not None:
            old.close()

    def identity(self) -> str:
        """Names the model that would answer (part of every cache key)."""
        if self._path is not None:
            return _file_identity(self._path)
        try:
            backend = self._shared(0)
        except BackendError:
            return "unloaded"
        path = getattr(backend, "path", None) if backend is not None else self._shared_path
        if isinstance(path, Path):
            return _file_identity(path)
        return backend.name if backend is not None else "unloaded"

    @contextmanager
    def lease(self, cancel: threading.Event | None = None,
              timeout: float = 120) -> Iterator[ModelBackend]:
        """The explanation backend for one use (see ``get``). A spawned context left
        unused for ``release_after_s`` afterwards is freed (``release_idle``)."""
        with self._lock:
            self._leases += 1
            self._stop_timer()
        try:
            yield self.get(cancel, timeout)
        finally:
            with self._lock:
                self._leases -= 1
                if self._leases == 0 and self._spawned is not None:
                    self._timer = threading.Timer(self.release_after_s, self.release_idle)
                    self._timer.daemon = True
                    self._timer.name = "slm-explain-release"
                    self._timer.start()

    def _stop_timer(self) -> None:
        """Cancel a pending release (called with ``_lock`` held)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def release_idle(self) -> bool:
        """Free the spawned context unless a lease holds it; True when one was freed.

        Its KV cache and buffers are ~75 MiB with the default model; creating it
        again costs a few milliseconds plus the explanation prompt it had cached.
        """
        with self._lock:
            if self._leases or self._spawned is None:
                return False
            spawned, self._spawned, self._timer = self._spawned[1], None, None
        spawned.close()
        trim()
        log.info("freed the idle explanation context")
        return True

    def get(self, cancel: threading.Event | None = None, timeout: float = 120) -> ModelBackend:
        """The explanation backend, loading it first if needed; BackendError if none.
        Callers that generate use ``lease`` so the context is not freed under them."""
        if self._problem:
            raise BackendError(f"explanation model: {self._problem}")
        if self._path is not None:
            return self._wait_dedicated(cancel, timeout)
        backend = self._shared(timeout)
        if backend is None:
            raise BackendError("the model is still loading")
        spawn = getattr(backend, "spawn", None)
        if spawn is None:
            return backend
        with self._lock:
            if self._spawned is None or self._spawned[0] != id(backend):
                if self._spawned is not None:
                    self._spawned[1].close()
                self._spawned = (id(backend), spawn(self.n_ctx))
            return self._spawned[1]

    def _wait_dedicated(self, cancel: threading.Event | None, timeout: float) -> ModelBackend:
        with self._lock:
            if self._loading is None:
                self._loading = threading.Event()
                threading.Thread(target=self._load, args=(self._path, self._loading),
                                 name="slm-explain-load", daemon=True).start()
            loading = self._loading
        deadline = time.monotonic() + timeout
        while not loading.wait(0.05):
            if (cancel is not None and cancel.is_set()) or time.monotonic() > deadline:
                raise BackendError("the explanation model is still loading")
        with self._lock:
            if self._dedicated is None:
                raise BackendError(f"explanation model: {self._problem or 'not loaded'}")
            return self._dedicated

    def _load(self, path: Path, done: threading.Event) -> None:
        """Background load of the dedicated model (kept only if still wanted)."""
        try:
            backend: ModelBackend | None = self._loader(path)
            problem = None
        except Exception as exc:  # any failure is this feature's, reported on use
            log.warning("explanation model %s failed to load: %s", path, exc)
            backend, problem = None, str(exc)
        with self._lock:
            if self._loading is done:
                self._dedicated, self._problem = backend, problem
                backend = None
        if backend is not None:
            backend.close()
        done.set()

    def close(self) -> None:
        """Free the dedicated model and the spawned context."""
        with self._lock:
            dedicated, spawned = self._dedicated, self._spawned
            self._dedicated, self._spawned, self._loading = None, None, None
            self._stop_timer()
        for backend in (dedicated, spawned[1] if spawned else None):
            if backend is not None:
                backend.close()


# -- the engine ---------------------------------------------------------------------


@dataclass
class Explanation:
    """One answer: the prose (possibly empty) and how it was obtained."""

    text: str
    source: str
    """cache, model, or none (nothing to explain or the model failed)."""
    ms: float = 0.0
    removed: list[str] = field(default_factory=list)
    problem: str | None = None
    timed_out: bool = False
    """The generation budget ran out (the text holds the sentences finished by then)."""


def _special_lookup(backend: ModelBackend) -> Callable[[str], bool] | None:
    lookup = getattr(backend, "_special_id", None)
    return (lambda text: lookup(text) is not None) if callable(lookup) else None


class Explainer:
    """Explains symbols, selections and writes docstrings for one workspace."""

    def __init__(self, tree: SourceTree, models: ModelRouter, cache: ExplainCache,
                 settings: ExplainSettings | None = None) -> None:
        self.tree = tree
        self.models = models
        self.cache = cache
        self.settings = settings or ExplainSettings()

    # hover

    def target_at(self, path: str, text: str, language: str | None, line: int,
                  col: int) -> Target | None:
        """The hover target at a position (tree-sitter only; fast)."""
        return resolve_target(self.tree, path, text, language, line, col)

    def hover_fields(self, target: Target) -> dict[str, str]:
        """The prompt fields for a hover on ``target``."""
        d = target.definition
        assert d is not None
        context = ""
        if target.scope is not None:
            summary = _summary_line(target.scope)
            context += (f"\nIt belongs to this {target.scope.kind}:\n\n```{d.language}\n"
                        f"{target.scope.signature}\n```\n" + (f"({summary})\n" if summary else ""))
        if target.callees:
            sigs = "\n".join(f"{_short(c.signature)}  # {c.qualname}, "
                             f"{rel(c.path, self.tree.root)}:{c.line + 1}" for c in target.callees)
            context += f"\nFunctions it calls, defined in this repository:\n\n```{d.language}\n" \
                       f"{sigs}\n```\n"
        return {"path": rel(d.path, self.tree.root), "kind": d.kind, "name": d.qualname,
                "language": d.language, "definition": _clip(_dedent(d.text), DEF_CHARS),
                "context": context}

    def explain(self, target: Target, cancel: threading.Event | None = None,
                budget_s: float | None = None, *, use_cache: bool = True) -> Explanation:
        """The explanation of a hover target, from the cache or the model."""
        if target.definition is None:
            return Explanation("", "none")
        return self.run_task("symbol", self.hover_fields(target), cancel, budget_s,
                             use_cache=use_cache)

    def cached(self, task: str, fields: dict[str, str]) -> tuple[str, str | None]:
        """The cache key for a task and its cached answer, if any."""
        key = content_key(task, prompt_version(task), self.models.identity(),
                          str(self.settings.max_tokens), json.dumps(fields, sort_keys=True))
        return key, self.cache.get(key)

    def run_task(self, task: str, fields: dict[str, str], cancel: threading.Event | None,
                 budget_s: float | None, *, use_cache: bool = True) -> Explanation:
        """Cache lookup, else generation, cleaning and the guard; errors become ``problem``."""
        start = time.perf_counter()
        key, hit = self.cached(task, fields)
        if hit is not None and use_cache:
            return Explanation(hit, "cache", (time.perf_counter() - start) * 1000)
        try:
            with self.models.lease(cancel) as backend:
                key, hit = self.cached(task, fields)  # the model may have loaded meanwhile
                if hit is not None and use_cache:
                    return Explanation(hit, "cache", (time.perf_counter() - start) * 1000)
                raw, ended, timed_out = self._generate(backend, task, task_messages(task, fields),
                                                       cancel, budget_s)
        except BackendError as exc:
            return Explanation("", "none", (time.perf_counter() - start) * 1000, problem=str(exc))
        except Cancelled:
            log.info("%s explanation cancelled after %.0f ms", task,
                     (time.perf_counter() - start) * 1000)
            raise
        context_words = set(WORD_RE.findall(" ".join(fields.values())))
        guarded = guard(clean_explanation(raw, complete=ended),
                        lambda w: w in context_words or self.tree.has_word(w))
        if guarded.text:  # an answer cut by the time budget is kept for this session only
            self.cache.put(key, guarded.text, {"task": task, "name": fields.get("name", "")},
                           persist=not timed_out)
        return Explanation(guarded.text, "model", (time.perf_counter() - start) * 1000,
                           guarded.removed, timed_out=timed_out)

    def _generate(self, backend: ModelBackend, task: str, messages: list[Message],
                  cancel: threading.Event | None, budget_s: float | None
                  ) -> tuple[str, bool, bool]:
        """Raw model text, whether it ended on its own, and whether the budget cut it."""
        segments = render_chat(backend.chat_template, messages, _special_lookup(backend))
        stop = _StopRule(budget_s, SENTENCES.get(task, 0))
        gen = backend.generate(segments, max_tokens=self.settings.max_tokens, stop=stop,
                               cancel=cancel)
        timed_out = stop.timed_out
        log.info("explained in %.0f+%.0f ms (%d prompt tokens, %d reused, %d generated, %s)",
                 gen.prompt_ms, gen.generate_ms, gen.n_prompt, gen.n_reused, gen.n_generated,
                 gen.stop_reason)
        log.debug("raw explanation: %r", gen.text)
        return gen.text, not timed_out and gen.stop_reason != "length", timed_out

    # selections

    def selection_fields(self, path: str, text: str, language: str | None, start: int,
                         end: int) -> dict[str, str]:
        """Prompt fields for explaining lines ``start``..``end`` (0-based, inclusive)."""
        lines = text.split("\n")
        selection = _dedent("\n".join(lines[start:end + 1]))
        defs = self.tree.definitions_in(path, text, language)
        site = innermost(defs, start, functions_only=True)
        context = ""
        if site is not None and not (site.start_line >= start and site.end_line <= end):
            context += f"\nThe selection is inside `{site.qualname}`:\n\n```{language or ''}\n" \
                       f"{site.signature}\n```\n"
        offsets = _line_offsets(text)
        names = calls_in(text, language, offsets[start], offsets[min(end + 1, len(offsets) - 1)])
        callees = [c for n in names[:MAX_CALLEES * 2] for c in self.tree.find(n)[:1]
                   if c.kind != "attribute"][:MAX_CALLEES]
        if callees:
            sigs = "\n".join(f"{_short(c.signature)}  # {c.qualname}, "
                             f"{rel(c.path, self.tree.root)}:{c.line + 1}" for c in callees)
            context += f"\nFunctions it calls:\n\n```{language or ''}\n{sigs}\n```\n"
        return {"path": rel(path, self.tree.root), "start": str(start + 1), "end": str(end + 1),
                "language": language or "", "selection": _clip(selection, DEF_CHARS * 2),
                "context": context}

    # docstrings

    def docstring(self, path: str, text: str, language: str | None, line: int,
                  cancel: threading.Event | None = None, budget_s: float | None = None
                  ) -> DocEdit | None:
        """A documentation comment for the definition at ``line``; None where none fits."""
        found = self.documentable(path, text, language, line)
        if found is None:
            return None
        d, site = found
        fields = {"path": rel(path, self.tree.root), "language": d.language, "name": d.name,
                  "definition": _clip(_dedent(d.text), DEF_CHARS), "context": ""}
        result = self.run_task("docstring", fields, cancel, budget_s)
        summary = first_sentence(result.text)
        if summary:
            return DocEdit(site.line, format_docstring(site, summary_lines(site, d.name, summary)),
                           True)
        return DocEdit(site.line, format_docstring(site, skeleton(site, d.name)), False)

    def documentable(self, path: str, text: str, language: str | None, line: int
                     ) -> tuple[Definition, DocSite] | None:
        """The definition whose header is at ``line`` (else the innermost around it) and
        where its documentation goes, if it has none yet."""
        defs = [d for d in self.tree.definitions_in(path, text, language) if d.kind != "attribute"]
        on_header = [d for d in defs if d.start_line <= line <= d.line]
        d = on_header[-1] if on_header else innermost(defs, line)
        if d is None:
            return None
        site = doc_site(text, d)
        if site is None or site.has_doc:
            return None
        return d, site


def _line_offsets(text: str) -> list[int]:
    """Byte offset of the start of every line, plus the end of the text."""
    offsets = [0]
    for line in text.encode("utf-8").split(b"\n"):
        offsets.append(offsets[-1] + len(line) + 1)
    offsets[-1] -= 1
    return offsets
