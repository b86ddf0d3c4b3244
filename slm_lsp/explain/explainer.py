"""The explanation pipeline: prompt from the definition and its context, generation
under a budget, the guard, the cache.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field

from indexer.secrets import redact
from prompts.explain import Message, prompt_version, task_messages

from ..backends.base import BackendError, Cancelled, ModelBackend, chat
from ..settings import ExplainSettings
from ..symbols import (
    WORD_RE,
    Definition,
    DocSite,
    SourceTree,
    calls_in,
    doc_site,
    innermost,
)
from .cache import ExplainCache, content_key
from .docstring import DocEdit, first_sentence, format_docstring, skeleton, summary_lines
from .guard import SENTENCES, SentenceStop, clean_explanation, guard
from .router import ModelRouter
from .target import DEF_CHARS, MAX_CALLEES, Target, clip, dedent, rel, resolve_target, short, summary_line

log = logging.getLogger(__name__)


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
            summary = summary_line(target.scope)
            context += (f"\nIt belongs to this {target.scope.kind}:\n\n```{d.language}\n"
                        f"{target.scope.signature}\n```\n" + (f"({summary})\n" if summary else ""))
        if target.callees:
            sigs = "\n".join(f"{short(c.signature)}  # {c.qualname}, "
                             f"{rel(c.path, self.tree.root)}:{c.line + 1}" for c in target.callees)
            context += f"\nFunctions it calls, defined in this repository:\n\n```{d.language}\n" \
                       f"{sigs}\n```\n"
        return {"path": rel(d.path, self.tree.root), "kind": d.kind, "name": d.qualname,
                "language": d.language, "definition": clip(dedent(d.text), DEF_CHARS),
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
        """Cache lookup, else generation, cleaning and the guard; errors become ``problem``.
        Secrets in the fields (the code shown to the model) are replaced first."""
        start = time.perf_counter()
        fields = {name: redact(value) for name, value in fields.items()}
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
        stop = SentenceStop(budget_s, SENTENCES.get(task, 0))
        gen = chat(backend, messages, max_tokens=self.settings.max_tokens, stop=stop, cancel=cancel)
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
        selection = dedent("\n".join(lines[start:end + 1]))
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
            sigs = "\n".join(f"{short(c.signature)}  # {c.qualname}, "
                             f"{rel(c.path, self.tree.root)}:{c.line + 1}" for c in callees)
            context += f"\nFunctions it calls:\n\n```{language or ''}\n{sigs}\n```\n"
        return {"path": rel(path, self.tree.root), "start": str(start + 1), "end": str(end + 1),
                "language": language or "", "selection": clip(selection, DEF_CHARS * 2),
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
                  "definition": clip(dedent(d.text), DEF_CHARS), "context": ""}
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
