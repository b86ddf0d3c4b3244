"""Docstrings as edits: the comment syntax per language, the skeleton used without a model."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..symbols import DocSite


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
