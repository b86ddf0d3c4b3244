"""Explanation prompts: Markdown templates rendered through the model's own chat template.

The task wording lives in ``prompts/explain_*.md`` (a system prompt and one user
prompt per task, with ``{field}`` slots). The conversation is rendered with the
chat template read from the model's GGUF, in a Jinja sandbox, using opaque
placeholders for the message contents. The result is split into segments: the
template's own text is scanned for the model's special tokens, and every message
content (which carries the user's code) is put back as plain text, so code that
contains ``<|im_start|>`` or ``[INST]`` can never become a control token.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from .fim import Segment

SpecialLookup = Callable[[str], bool]
"""True when a piece of text is exactly one special token of the model."""

_PLACEHOLDER = "\ue000{}\ue001"
_PLACEHOLDER_RE = re.compile("\ue000(\\d+)\ue001")
_CANDIDATE_RE = re.compile(r"<[^<>\s]{1,64}>|\[/?[A-Za-z_]{2,24}\]|▁<[A-Z]{2,8}>")
_FIELD_RE = re.compile(r"(?<!\{)\{([a-z_]+)\}(?!\})")


@dataclass(frozen=True)
class Message:
    """One chat message."""

    role: str
    content: str


class PromptError(Exception):
    """A prompt template is missing or a field it needs was not given."""


@cache
def load_template(name: str) -> str:
    """The text of ``prompts/explain_<name>.md``."""
    try:
        return resources.files("prompts").joinpath(f"explain_{name}.md").read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise PromptError(f"no prompt template explain_{name}.md") from exc


def fill(template: str, fields: Mapping[str, str]) -> str:
    """``template`` with each ``{field}`` replaced; other braces are left alone."""

    def sub(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in fields:
            raise PromptError(f"prompt field {key!r} has no value")
        return fields[key]

    return _FIELD_RE.sub(sub, template).strip()


def task_messages(task: str, fields: Mapping[str, str]) -> list[Message]:
    """The system prompt and the filled user prompt of one task."""
    return [Message("system", fill(load_template("system"), {})),
            Message("user", fill(load_template(task), fields))]


def prompt_version(*tasks: str) -> str:
    """A short hash of the templates used, so cached answers expire when they change."""
    texts = [load_template("system")] + [load_template(t) for t in tasks]
    return hashlib.sha256("\0".join(texts).encode()).hexdigest()[:12]


# -- chat templates -------------------------------------------------------------------


def _environment() -> Any:
    """A sandboxed Jinja environment configured like Hugging Face's chat templating."""
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise PromptError(f"chat template: {message}")

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[loopcontrols])
    env.filters["tojson"] = lambda value, indent=None: json.dumps(value, ensure_ascii=False,
                                                                   indent=indent)
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: ""
    return env


@cache
def _compiled(template: str) -> Any:
    return _environment().from_string(template)


def _render_with_placeholders(template: str, messages: Sequence[Message]) -> str:
    """The chat template rendered with opaque placeholders as message contents."""
    from jinja2 import TemplateError

    data = [{"role": m.role, "content": _PLACEHOLDER.format(i)} for i, m in enumerate(messages)]
    try:
        return str(_compiled(template).render(
            messages=data, add_generation_prompt=True, bos_token="", eos_token="",
            tools=None, documents=None))
    except TemplateError as exc:
        raise PromptError(f"chat template failed: {exc}") from exc


def split_special(text: str, is_special: SpecialLookup | None) -> list[Segment]:
    """Template text as segments: the model's special tokens apart, the rest plain."""
    if is_special is None:
        return [Segment(text)] if text else []
    segments: list[Segment] = []
    last = 0
    for match in _CANDIDATE_RE.finditer(text):
        if not is_special(match.group(0)):
            continue
        if match.start() > last:
            segments.append(Segment(text[last:match.start()]))
        segments.append(Segment(match.group(0), True))
        last = match.end()
    if last < len(text):
        segments.append(Segment(text[last:]))
    return segments


def _merge_system(messages: Sequence[Message]) -> list[Message]:
    """Messages for templates without a system role: the system text opens the user turn."""
    system = "\n\n".join(m.content for m in messages if m.role == "system")
    rest = [m for m in messages if m.role != "system"]
    if system and rest:
        rest[0] = Message(rest[0].role, f"{system}\n\n{rest[0].content}")
    return rest


def render_chat(template: str | None, messages: Sequence[Message],
                is_special: SpecialLookup | None = None) -> list[Segment]:
    """The conversation as prompt segments, ending where the assistant's answer begins.

    Without a chat template (or one that cannot render these messages) a plain
    instruction layout is used, with no special tokens at all.
    """
    if not template:
        return plain_chat(messages)
    try:
        rendered = _render_with_placeholders(template, messages)
        used = messages
        if len(_PLACEHOLDER_RE.findall(rendered)) != len(messages):  # e.g. system role dropped
            used = _merge_system(messages)
            rendered = _render_with_placeholders(template, used)
    except PromptError:
        used = _merge_system(messages)
        try:
            rendered = _render_with_placeholders(template, used)
        except PromptError:
            return plain_chat(messages)
    return _substitute(rendered, used, is_special)


def _substitute(rendered: str, messages: Sequence[Message],
                is_special: SpecialLookup | None) -> list[Segment]:
    """Split the rendered template at its placeholders and put the real contents back."""
    segments: list[Segment] = []
    last = 0
    for match in _PLACEHOLDER_RE.finditer(rendered):
        segments += split_special(rendered[last:match.start()], is_special)
        segments.append(Segment(messages[int(match.group(1))].content))
        last = match.end()
    segments += split_special(rendered[last:], is_special)
    return _merge_plain(segments)


def _merge_plain(segments: Sequence[Segment]) -> list[Segment]:
    """Adjacent plain segments joined, empty ones dropped."""
    out: list[Segment] = []
    for seg in segments:
        if not seg.special and not seg.text:
            continue
        if out and not seg.special and not out[-1].special:
            out[-1] = Segment(out[-1].text + seg.text)
        else:
            out.append(seg)
    return out


def plain_chat(messages: Sequence[Message]) -> list[Segment]:
    """A template-free instruction layout for models without a chat template."""
    parts = [f"### {m.role.capitalize()}\n{m.content}\n\n" for m in messages]
    return [Segment("".join(parts) + "### Assistant\n")]


def segments_text(segments: Sequence[Segment]) -> str:
    """The prompt as one string (for logs and tests)."""
    return "".join(s.text for s in segments)
