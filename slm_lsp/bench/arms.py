"""The benchmark's arms: the server settings each one runs with, on identical targets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Arm:
    """One configuration of the server, run on the same targets as the others."""

    name: str
    description: str
    settings: dict[str, Any]
    """Overrides of the `slm` section (wire keys) on top of the benchmark's base."""
    index: bool = False
    requires: tuple[str, ...] = ()
    """Setting keys (`slm.x.y`) the server must know for this arm to mean anything."""


BASE_SETTINGS: dict[str, Any] = {"completion": {"timeoutMs": 600000}}
"""Every arm: no soft timeout, so a cold first request returns the model's answer
instead of an empty list after 8 s (the latency of that answer is what is measured)."""

LARGE_MODEL = "qwen2.5-coder-1.5b"
"""The local large model of the router arms."""

ESCALATE_BELOW = 0.8
"""The routed arm's threshold (slm.backend.escalateBelow), read off the small/large curve."""

ARMS: dict[str, Arm] = {a.name: a for a in (
    Arm("no_retrieval", "local prefix and suffix only: index off; KV splice and token healing on",
        {"index": {"enabled": False}}),
    Arm("retrieval", "similar chunks: the project's index (dense + lexical) of the repository "
        "without the target's file; KV splice and token healing on",
        {"index": {"enabled": True, "context": "similar"}}, index=True,
        requires=("slm.index.enabled",)),
    Arm("definitions", "definition context: stubs of the definitions the code at the cursor "
        "refers to (imports followed to files); no embedding index is built. The target's own "
        "file is read from the open, masked document only",
        {"index": {"enabled": True, "context": "definitions"}},
        requires=("slm.index.context",)),
    Arm("definitions256", "definition context within 256 tokens (half the default budget)",
        {"index": {"enabled": True, "context": "definitions", "contextTokens": 256}},
        requires=("slm.index.context",)),
    Arm("today", "the defaults before issue 18 (1,536 prompt tokens before the cursor, 256 after; "
        "512 tokens of similar chunks from the index; 8 warm regions): the baseline of the "
        "cold-path work",
        {"index": {"enabled": True, "context": "similar", "contextTokens": 512},
         "completion": {"maxPrefixTokens": 1536, "maxSuffixTokens": 256, "warmRegions": 8}},
        index=True, requires=("slm.index.context",)),
    Arm("defaults", "the shipped defaults, whatever they are at the commit measured", {}),
    Arm("both", "definitions first, similar chunks in the tokens left",
        {"index": {"enabled": True, "context": "both"}}, index=True,
        requires=("slm.index.context",)),
    Arm("small", "the shipped defaults (the 0.5B model, definition context): the router's fast "
        "model; every answer's mean token log-probability is recorded for the routing curve",
        {}),
    Arm("large", "the shipped defaults with the local 1.5B model (qwen2.5-coder-1.5b) for every "
        "request: the router's large model", {"model": {"name": LARGE_MODEL}}),
    Arm("routed", "the router as configured for a laptop with the 1.5B model: keystrokes on the "
        f"0.5B model, asked again of the 1.5B one under a mean token probability of "
        f"{ESCALATE_BELOW}", {"backend": {"largeModel": LARGE_MODEL,
                                          "escalateBelow": ESCALATE_BELOW}},
        requires=("slm.backend.escalateBelow",)),
    Arm("psm_plain", "plain prefix/suffix/middle layout without the latency tricks: index off, "
        "KV splice off (common-prefix reuse only), token healing off; the result cache stays",
        {"index": {"enabled": False}, "model": {"kvSplice": False, "kvSnapshots": 0},
         "completion": {"tokenHealing": False, "warmRegions": 0}},
        requires=("slm.model.kvSplice", "slm.completion.tokenHealing")),
)}


DEFAULT_ARMS = ("no_retrieval", "retrieval", "psm_plain")
"""What a run compares unless told otherwise (`--arms`)."""

PREFIX_BUDGETS = (256, 512, 768, 1024, 1536)
SUFFIX_BUDGETS = (64, 128, 256)


def _budget_arm(prefix: int, suffix: int) -> Arm:
    return Arm(f"budget_p{prefix}_s{suffix}",
               f"no_retrieval with at most {prefix} prompt tokens before the cursor and {suffix} "
               "after it (the prompt-budget curve)",
               {"index": {"enabled": False},
                "completion": {"maxPrefixTokens": prefix, "maxSuffixTokens": suffix}})


ARMS.update({a.name: a for a in (_budget_arm(p, s) for p in PREFIX_BUDGETS for s in SUFFIX_BUDGETS)})


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Nested dictionaries merged, ``extra`` winning."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def arm_settings(arm: Arm, model_path: str | None = None, product_timeout: bool = False
                 ) -> dict[str, Any]:
    """The `slm` section sent to the arm's servers (``product_timeout``: keep the product's
    request timeout, so a slow first request is answered empty as a user would see it)."""
    settings = merge({} if product_timeout else BASE_SETTINGS, arm.settings)
    if model_path:
        settings = merge(settings, {"model": {"path": model_path}})
    return settings


def pending_reason(arm: Arm) -> str | None:
    """Why an arm cannot run with this server build yet, or None."""
    from ..settings import describe

    known = {row.key for row in describe()}
    missing = [key for key in arm.requires if key not in known]
    if missing:
        return f"the server has no setting {', '.join(missing)} yet"
    return None


def effective_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The whole settings tree the server derives from ``settings`` (snake_case)."""
    from ..settings import as_dict, parse_settings

    parsed, _problems = parse_settings(settings)
    return as_dict(parsed)
