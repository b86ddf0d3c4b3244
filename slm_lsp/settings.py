"""Settings: one frozen dataclass tree, parsed from the client's ``slm`` section.

Keys on the wire are camelCase (``maxTokens``); fields here are snake_case.
Every field has a one-line docstring (the string literal right after it), which
``describe()`` reads to generate documentation tables and editor schemas.

A bad value never raises: ``parse_settings`` returns the default for that field
and a human-readable problem, which the server shows with ``window/showMessage``.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap
from dataclasses import dataclass, field, fields, is_dataclass, replace
from typing import Any, get_type_hints

LOGGERS = ("slm_lsp", "indexer", "prompts")
"""The project's loggers: `--log-level` and `slm.logLevel` set all three."""


@dataclass(frozen=True)
class ModelSettings:
    """The completion model."""

    name: str = "qwen2.5-coder-0.5b"
    """Known model to use when `path` is empty (see `slm-lsp model list`)."""
    path: str = ""
    """Path to any GGUF file with fill-in-the-middle tokens; overrides `name`."""
    threads: int = 0
    """CPU threads for the model; 0 picks the number of physical cores."""
    context_size: int = 3072
    """Model context window in tokens (prompt plus generation); 12 KiB of memory each (default model)."""
    batch_size: int = 512
    """Prompt tokens evaluated per batch."""
    kv_splice: bool = True
    """Reuse cached model state for text that moved in the prompt (typing, cursor moves)."""
    kv_snapshots: int = 12
    """Model states kept on disk (~20 MiB each): warmed regions and places left by a far jump."""


@dataclass(frozen=True)
class BackendSettings:
    """Where the model runs: in this process, or on your team's own inference server."""

    kind: str = "local"
    """local (the model above, in this process) or openai (an OpenAI-compatible server you run)."""
    url: str = ""
    """API base URL, e.g. http://127.0.0.1:8080/v1; a non-loopback host must be in your allowed_hosts."""
    model: str = ""
    """The served model's name, sent with every request (empty: the server's default)."""
    fim: str = "auto"
    """The served model's FIM tokens: auto, qwen2.5-coder, starcoder, deepseek-coder, codellama, codestral."""
    keystrokes: str = "local"
    """Completions while typing: local (the fast model here) or server (the large model, like the rest)."""
    connect_timeout_ms: int = 1000
    """Give up connecting to the server after this long and use the local model."""
    read_timeout_ms: int = 3000
    """Use the local model when the server sends nothing for this long (first token included)."""
    retry_after_s: int = 30
    """After a failure, seconds on the local model before trying the server again (doubling, at most 300)."""
    large_model: str = ""
    """No server: a local model (qwen2.5-coder-1.5b) for invoked, multi-line completions and hovers."""
    escalate_below: float = 0.0
    """Ask the large model again when a typing suggestion's mean token probability is below (0: never)."""


@dataclass(frozen=True)
class CompletionSettings:
    """Inline completion."""

    enabled: bool = True
    """Answer inline completion requests at all."""
    max_tokens: int = 64
    """Upper bound on generated tokens per suggestion."""
    max_lines: int = 8
    """Most lines in a multi-line suggestion (only offered where a block opens)."""
    max_prefix_tokens: int = 512
    """Budget for the text before the cursor."""
    max_suffix_tokens: int = 256
    """Budget for the text after the cursor."""
    timeout_ms: int = 8000
    """Give up on a suggestion after this long and return nothing."""
    warm_on_cursor: bool = True
    """Prepare the suggestion where the cursor comes to rest (editors send `slm/cursor`)."""
    warm_regions: int = 0
    """Bands of lines around the cursor prepared while idle, nearest first; 0 turns it off."""
    token_healing: bool = True
    """Let the model regenerate a partly typed word and the blanks or indentation before it."""


@dataclass(frozen=True)
class IndexSettings:
    """Repository index used as completion and hover context."""

    enabled: bool = True
    """Build and use the repository index."""
    context_tokens: int = 256
    """Token budget for repository context in a completion prompt."""
    context: str = "definitions"
    """Repository context: definitions (of the names used at the cursor), similar (search hits) or both."""
    retrieval_budget_ms: int = 100
    """Time budget for retrieval per completion request."""
    max_file_kb: int = 512
    """Files larger than this are not indexed."""


@dataclass(frozen=True)
class ExplainSettings:
    """Hover explanations."""

    enabled: bool = True
    """Answer hover requests with an explanation."""
    model_name: str = ""
    """Known model for explanations; empty uses the completion model."""
    model_path: str = ""
    """GGUF path for explanations; overrides `modelName`."""
    max_tokens: int = 160
    """Upper bound on generated tokens per explanation."""
    release_after_s: int = 60
    """Seconds without an explanation after which its model context (~75 MiB) is freed; 0: at once."""


@dataclass(frozen=True)
class Settings:
    """All of slm-lsp's settings (the `slm` section)."""

    model: ModelSettings = field(default_factory=ModelSettings)
    """The completion model."""
    backend: BackendSettings = field(default_factory=BackendSettings)
    """An on-prem inference server (optional)."""
    completion: CompletionSettings = field(default_factory=CompletionSettings)
    """Inline completion."""
    index: IndexSettings = field(default_factory=IndexSettings)
    """Repository index."""
    explain: ExplainSettings = field(default_factory=ExplainSettings)
    """Hover explanations."""
    log_level: str = "info"
    """Server log level: debug, info, warning or error (logs go to stderr). Sent by the
    editor, it replaces the server's `--log-level`."""


# Extra validation beyond the type: field path -> (check, description).
_LIMITS: dict[str, tuple[Any, str]] = {
    "model.threads": (lambda v: 0 <= v <= 256, "between 0 and 256"),
    "model.context_size": (lambda v: 512 <= v <= 131072, "between 512 and 131072"),
    "model.batch_size": (lambda v: 8 <= v <= 8192, "between 8 and 8192"),
    "model.kv_snapshots": (lambda v: 0 <= v <= 64, "between 0 and 64"),
    "backend.kind": (lambda v: v in ("local", "openai"), "one of local, openai"),
    "backend.fim": (lambda v: v in ("auto", "qwen2.5-coder", "starcoder", "deepseek-coder",
                                    "codellama", "codestral"),
                    "one of auto, qwen2.5-coder, starcoder, deepseek-coder, codellama, codestral"),
    "backend.keystrokes": (lambda v: v in ("local", "server"), "one of local, server"),
    "backend.connect_timeout_ms": (lambda v: 50 <= v <= 60000, "between 50 and 60000"),
    "backend.read_timeout_ms": (lambda v: 100 <= v <= 600000, "between 100 and 600000"),
    "backend.retry_after_s": (lambda v: 1 <= v <= 3600, "between 1 and 3600"),
    "backend.escalate_below": (lambda v: 0 <= v <= 1, "between 0 and 1"),
    "completion.max_tokens": (lambda v: 1 <= v <= 1024, "between 1 and 1024"),
    "completion.max_lines": (lambda v: 1 <= v <= 200, "between 1 and 200"),
    "completion.max_prefix_tokens": (lambda v: 16 <= v <= 65536, "between 16 and 65536"),
    "completion.max_suffix_tokens": (lambda v: 0 <= v <= 65536, "between 0 and 65536"),
    "completion.warm_regions": (lambda v: 0 <= v <= 64, "between 0 and 64"),
    "completion.timeout_ms": (lambda v: 100 <= v <= 600000, "between 100 and 600000"),
    "explain.release_after_s": (lambda v: 0 <= v <= 86400, "between 0 and 86400"),
    "index.context_tokens": (lambda v: 0 <= v <= 65536, "between 0 and 65536"),
    "index.context": (lambda v: v in ("definitions", "similar", "both"),
                      "one of definitions, similar, both"),
    "index.retrieval_budget_ms": (lambda v: 1 <= v <= 10000, "between 1 and 10000"),
    "index.max_file_kb": (lambda v: 1 <= v <= 1048576, "between 1 and 1048576"),
    "explain.max_tokens": (lambda v: 1 <= v <= 2048, "between 1 and 2048"),
    "log_level": (lambda v: v in ("debug", "info", "warning", "error"),
                  "one of debug, info, warning, error"),
}


def camel(name: str) -> str:
    """`max_tokens` -> `maxTokens`."""
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def _check_value(path: str, value: Any, expected: type, wire: str) -> str | None:
    if expected is bool:
        ok = isinstance(value, bool)
    elif expected is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif expected is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif expected is str:
        ok = isinstance(value, str)
    else:  # pragma: no cover - only the types above are used
        ok = isinstance(value, expected)
    if not ok:
        return f"slm.{wire}: expected {expected.__name__}, got {value!r}"
    limit = _LIMITS.get(path)
    if limit and not limit[0](value):
        return f"slm.{wire}: {value!r} is out of range ({limit[1]})"
    return None


def _parse(cls: type, raw: Any, prefix: str, problems: list[str]) -> Any:
    default = cls()
    if raw is None:
        return default
    if not isinstance(raw, dict):
        wire = ".".join(camel(part) for part in prefix.split(".")) if prefix else ""
        problems.append(f"slm{'.' + wire if wire else ''}: expected an object, got {raw!r}")
        return default
    hints = get_type_hints(cls)
    known = {camel(f.name): f for f in fields(cls)} | {f.name: f for f in fields(cls)}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        f = known.get(key)
        path = f"{prefix}.{key}" if prefix else key
        if f is None:
            problems.append(f"slm.{path}: unknown setting (ignored)")
            continue
        fpath = f"{prefix}.{f.name}" if prefix else f.name
        wire = ".".join(camel(part) for part in fpath.split("."))
        hint = hints[f.name]
        if is_dataclass(hint):
            values[f.name] = _parse(hint, value, fpath, problems)  # type: ignore[arg-type]
            continue
        problem = _check_value(fpath, value, hint, wire)
        if problem:
            problems.append(problem + f"; using the default {getattr(default, f.name)!r}")
        else:
            values[f.name] = float(value) if hint is float else value
    return replace(default, **values)


def parse_settings(raw: Any) -> tuple[Settings, list[str]]:
    """Parse the client's `slm` section; returns settings and problems found."""
    problems: list[str] = []
    settings = _parse(Settings, raw, "", problems)
    return settings, problems


def _field_docs(cls: type) -> dict[str, str]:
    """Docstrings written right after each field in a dataclass body."""
    source = textwrap.dedent(inspect.getsource(cls))
    body = ast.parse(source).body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for node, nxt in zip(body, body[1:], strict=False):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)):
            docs[node.target.id] = " ".join(str(nxt.value.value).split())  # one line
    return docs


@dataclass(frozen=True)
class SettingDoc:
    """One row of the generated settings reference."""

    key: str
    type: str
    default: Any
    doc: str


def describe(cls: type = Settings, prefix: str = "slm") -> list[SettingDoc]:
    """Every leaf setting with its wire key, type, default and docstring."""
    rows: list[SettingDoc] = []
    hints = get_type_hints(cls)
    docs = _field_docs(cls)
    default = cls()
    for f in fields(cls):
        key = f"{prefix}.{camel(f.name)}"
        hint = hints[f.name]
        if is_dataclass(hint):
            rows.extend(describe(hint, key))  # type: ignore[arg-type]
        else:
            rows.append(SettingDoc(key, hint.__name__, getattr(default, f.name), docs.get(f.name, "")))
    return rows


def section_changed(old: Settings, new: Settings, name: str) -> bool:
    """True when the named sub-section differs (used to decide on a model reload)."""
    return bool(getattr(old, name) != getattr(new, name))


def as_dict(settings: Settings) -> dict[str, Any]:
    """Settings as plain data (snake_case), for logging and `doctor`."""
    return dataclasses.asdict(settings)
