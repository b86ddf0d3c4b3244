"""Secrets inside files: found by their content and replaced before text reaches a prompt,
an explanation or the index.

The path rules (`walker.is_secret_path`) keep files such as `.env` or `id_rsa`
out altogether. This module handles a harmless-looking file that holds one: a
private key block, a cloud access key, a token or password assigned as a string
literal, a URL with a password in it. The secret's characters are replaced by
``REDACTED`` (a key block's lines are emptied), so the code around it still reads
the same, line numbers stay where they were, and the same text always gives the
same result (prompts stay byte-identical for the model's cache).

Patterns are deliberately specific: a false positive only blanks one string,
but a detector that fires on every long identifier would blank the code itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MARK = "REDACTED"
"""What a secret is replaced by."""


@dataclass(frozen=True)
class Finding:
    """One secret: its kind and where it is in the text (``start``..``end`` is replaced)."""

    kind: str
    start: int
    end: int


_KEY_BEGIN = r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
_KEY_END = r"-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"

# A key block; also its head alone (the text was cut inside it, e.g. a prompt window
# ending there) and its tail alone (the window starting inside it).
_KEY_BLOCK = re.compile(f"({_KEY_BEGIN})(.*?)(?:({_KEY_END})|\\Z)", re.S)
_KEY_TAIL = re.compile(f"\\A()(.*?)({_KEY_END})", re.S)

_SECRET_WORDS = (r"pass(?:word|wd|phrase)?|pwd|secret|token|api[_-]?key|apikey|access[_-]?key"
                 r"|private[_-]?key|client[_-]?secret|auth[_-]?key|credentials?")

_PATTERNS: tuple[tuple[str, tuple[str, ...], re.Pattern[str], int], ...] = (
    # kind, literals one of which a text must hold (a cheap test first), pattern, group
    # holding the secret (0: the whole match)
    ("aws-access-key-id", ("AKIA", "ASIA", "ABIA", "ACCA"),
     re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b"), 0),
    ("github-token", ("gh", "github_pat_"),
     re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{60,255})\b"), 0),
    ("gitlab-token", ("glpat-",), re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}\b"), 0),
    ("slack-token", ("xox",), re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b"), 0),
    ("google-api-key", ("AIza",), re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"), 0),
    ("stripe-key", ("_live_",), re.compile(r"\b(?:sk|rk)_live_[0-9A-Za-z]{16,}\b"), 0),
    ("openai-key", ("T3BlbkFJ",),
     re.compile(r"\bsk-(?:proj-)?[A-Za-z0-9_-]{20,}T3BlbkFJ[A-Za-z0-9_-]{20,}\b"), 0),
    ("jwt", ("eyJ",), re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"), 0),
    ("aws-secret-key", ("",), re.compile(
        r"(?i)aws_?secret_?(?:access_?)?key[\"']?\s*[:=]\s*[\"']?([A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])"), 1),
    # scheme://user:password@host (database URLs, broker URLs, git remotes)
    ("url-password", ("://",), re.compile(r"\b[a-z][a-z0-9+.-]{1,20}://[^\s:/@'\"`]+:([^\s@/'\"`]{3,})@"), 1),
    # password = "..." / "api_key": "..." / TOKEN := '...' (a quoted literal of 8+ characters)
    ("assigned-secret", ("",), re.compile(
        f"(?i)(?:{_SECRET_WORDS})[\\w.-]*[\"']?\\s*(?::=|=>|[:=])\\s*"
        r"[bru]{0,2}([\"'])([^\"'\s\\]{8,})\1"), 2),
)

_PLACEHOLDER_VALUES = re.compile(
    r"(?i)^(?:x+|\*+|\.+|<[^>]*>|\$\{[^}]*\}|\{\{[^}]*\}\}|%\(?\w*\)?s|changeme|password|secret|"
    r"your[_-]?\w*|example\w*|dummy\w*|placeholder|redacted|none|null|true|false)$")
"""Values of an assignment that are clearly not a secret (templates, placeholders)."""


def find(text: str) -> list[Finding]:
    """Every secret in ``text``, in order, without overlaps."""
    found: list[Finding] = []
    if "PRIVATE KEY" in text:
        for match in _KEY_BLOCK.finditer(text):
            found.append(Finding("private-key", match.start(2), match.end(2)))
        tail = _KEY_TAIL.match(text)
        if tail and not _KEY_BLOCK.search(text, 0, tail.end()):
            found.append(Finding("private-key", 0, tail.end(2)))
    for kind, literals, pattern, group in _PATTERNS:
        if not any(literal in text for literal in literals):
            continue
        for match in pattern.finditer(text):
            value = match.group(group)
            if kind == "assigned-secret" and _looks_like_code(value):
                continue
            found.append(Finding(kind, match.start(group), match.end(group)))
    found.sort(key=lambda f: (f.start, -f.end))
    kept: list[Finding] = []
    for f in found:
        if kept and f.start < kept[-1].end:
            continue  # inside a finding already kept (a key block's body, a longer match)
        kept.append(f)
    return kept


def _looks_like_code(value: str) -> bool:
    """A literal that is a placeholder, a template or a word, not a secret."""
    if _PLACEHOLDER_VALUES.match(value):
        return True
    # A secret mixes character classes; a single lowercase word (a setting name,
    # a file name, a label such as "auth_token_header") does not.
    classes = sum(bool(re.search(p, value)) for p in (r"[a-z]", r"[A-Z]", r"[0-9]", r"[^A-Za-z0-9]"))
    return classes < 2 or bool(re.fullmatch(r"[a-z]+(?:[_.-][a-z]+)*", value))


def redact(text: str, findings: list[Finding] | None = None) -> str:
    """``text`` with each secret replaced (a key block keeps its line breaks only)."""
    findings = find(text) if findings is None else findings
    if not findings:
        return text
    out: list[str] = []
    at = 0
    for f in findings:
        out.append(text[at:f.start])
        secret = text[f.start:f.end]
        out.append("\n" * secret.count("\n") if f.kind == "private-key" else MARK)
        at = f.end
    out.append(text[at:])
    return "".join(out)
