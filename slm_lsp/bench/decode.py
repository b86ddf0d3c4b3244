"""`python -m slm_lsp.bench.decode REPO [REPO ...]`: decoding speed, prompt and generation.

Prompt evaluation by step: the backend evaluates a prompt in batches of at most
``KVCache.CANCEL_STEP`` tokens for a request and ``KVCache.WARM_STEP`` for a region
warm-up, checking for cancellation between batches. Smaller batches answer a
cancellation sooner but read the weights more often. This command evaluates
the prompt of the first target (default budgets, no repository context) from an
empty cache in each step size of ``--steps``, best of two.

Generation by drafting rule: prompt-lookup decoding proposes tokens that followed the same few tokens earlier
(see ``backends.draft.lookup_draft``) and checks them in one batch. A batch of
several tokens costs more than one token, so a rule that drafts often and is
rarely right makes generation slower. This command times the same requests
under three rules, with the real model and no server:

- ``off``: no drafts;
- ``wide``: up to 8 tokens from the previous suggestion or the prompt, 3- or 2-token keys;
- ``default``: the backend's rule (8 from the previous suggestion, fewer from the prompt
  and only with a 3-token key).

The requests are the benchmark's targets (fixed seed), whole-line and
rest-of-line, with the prompt the engine would build minus the repository
context. Each prompt is evaluated once untimed; then each rule generates once
and only the generation is timed. The previous suggestion a rule drafts from is
its own answer at the previous request, as when the user moves from line to line.
Prints one JSON object; the texts must be the same under every rule (drafts only
change the speed; the count is reported).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prompts.fim import Segment, build_fim_prompt, fit_prefix, fit_suffix

from ..backends.llama import LlamaBackend
from ..context import CursorContext, split_at
from ..engine import heal_text, token_limit
from ..postprocess import decide_shape, stop_rule
from ..runtime import load_llama
from ..settings import Settings
from .run import load_sources
from .targets import masked_document, mean, percentile, select_targets, utf16_column


@dataclass(frozen=True)
class Rule:
    """A drafting rule: the backend attributes it sets."""

    name: str
    draft_tokens: int
    prompt_draft_tokens: int
    prompt_draft_keys: tuple[int, ...]


def rules(backend: LlamaBackend) -> list[Rule]:
    """The compared rules; ``default`` is what the backend does out of the box."""
    return [
        Rule("off", 0, 0, ()),
        Rule("wide", 8, 8, (3, 2)),
        Rule("default", backend.draft_tokens, backend.prompt_draft_tokens,
             tuple(backend.prompt_draft_keys)),
    ]


def contexts(roots: list[Path], count: int, seed: int) -> list[CursorContext]:
    """A cursor context per task of ``count`` targets across ``roots``."""
    files: dict[str, str] = {}
    for root in roots:
        for rel, text in load_sources(root).items():
            files[f"{root.name}/{rel}"] = text
    out = []
    for target in select_targets(files, count, seed):
        for column in (target.indent, target.column):
            text = masked_document(files[target.path], target, column)
            at = utf16_column(text.split("\n")[target.line], column)
            prefix, suffix = split_at(text, target.line, at)
            out.append(CursorContext(uri=f"file:///{target.path}", path=target.path,
                                     language=target.language, prefix=prefix, suffix=suffix,
                                     line=target.line, character=at))
    return out


def prompt_of(backend: LlamaBackend, ctx: CursorContext, prefix: str, prefix_tokens: int,
                  suffix_tokens: int) -> list[Segment]:
    """The prompt of ``ctx`` with ``prefix`` as the text before the cursor, cut to the
    budgets like the engine cuts it, without repository context."""
    fim = backend.fim
    if fim is None:
        raise SystemExit("error: the configured model has no fill-in-the-middle tokens")
    count = backend.count_tokens
    return build_fim_prompt(
        fim, fit_prefix(prefix, prefix_tokens, count),
        fit_suffix(ctx.suffix, suffix_tokens, count, first_line=ctx.line), path=ctx.path)


def eval_steps(backend: LlamaBackend, ctx: CursorContext, steps: list[int],
               settings: Settings) -> dict[str, Any]:
    """Milliseconds to evaluate ``ctx``'s default prompt from an empty cache, per step."""
    c = settings.completion
    tokens = backend.encode(prompt_of(backend, ctx, ctx.prefix, c.max_prefix_tokens,
                                          c.max_suffix_tokens))
    out: dict[str, Any] = {"tokens": len(tokens), "steps": {}}
    for step in steps:
        best = float("inf")
        for _ in range(2):
            backend.kv.clear()
            backend.kv.step = step
            started = time.perf_counter()
            backend.kv.sync(tokens)
            best = min(best, (time.perf_counter() - started) * 1000)
        backend.kv.step = backend.kv.CANCEL_STEP
        out["steps"][str(step)] = {"ms": round(best, 1),
                                   "tokens_per_s": round(len(tokens) / best * 1000, 1)}
        sys.stderr.write(f"step {step}: {best:.0f} ms for {len(tokens)} tokens\n")
    backend.kv.clear()
    return out


def measure(roots: list[Path], count: int, seed: int, prefix_tokens: int,
            suffix_tokens: int, steps: list[int]) -> dict[str, Any]:
    """Time every step and every rule; see the module docstring."""
    settings = Settings()
    backend = load_llama(settings.model)
    assert isinstance(backend, LlamaBackend)
    compared = rules(backend)
    times: dict[str, list[float]] = {r.name: [] for r in compared}
    counts: dict[str, dict[str, int]] = {r.name: {"tokens": 0, "drafted": 0, "accepted": 0}
                                         for r in compared}
    previous: dict[str, list[int]] = {r.name: [] for r in compared}
    same = 0
    tasks = contexts(roots, count, seed)
    evaluation = eval_steps(backend, tasks[0], steps, settings) if tasks and steps else None
    for k, ctx in enumerate(tasks):
        shape = decide_shape(ctx, settings.completion.max_lines)
        heal = heal_text(ctx.prefix)
        kept = ctx.prefix[:len(ctx.prefix) - len(heal)]
        prompt = prompt_of(backend, ctx, kept, prefix_tokens, suffix_tokens)
        limit = token_limit(settings.completion, shape)
        stop = stop_rule(ctx, shape)
        backend.draft_tokens = 0
        backend.generate(prompt, max_tokens=limit, stop=stop, forced=heal)  # evaluate the prompt
        texts = set()
        for rule in compared:
            backend.draft_tokens = rule.draft_tokens
            backend.prompt_draft_tokens = rule.prompt_draft_tokens
            backend.prompt_draft_keys = rule.prompt_draft_keys
            backend.previous_tokens = previous[rule.name]
            gen = backend.generate(prompt, max_tokens=limit, stop=stop, forced=heal)
            previous[rule.name] = backend.previous_tokens
            times[rule.name].append(gen.generate_ms)
            c = counts[rule.name]
            c["tokens"] += gen.n_generated
            c["drafted"] += int(gen.timings.get("drafted", 0))
            c["accepted"] += int(gen.timings.get("accepted", 0))
            texts.add(gen.text)
        same += len(texts) == 1
        sys.stderr.write(f"[{k + 1}/{len(tasks)}] {ctx.path}:{ctx.line + 1} "
                         + " ".join(f"{r.name} {times[r.name][-1]:.0f} ms" for r in compared)
                         + "\n")
    backend.close()
    return {
        "command": "python -m slm_lsp.bench.decode " + " ".join(str(r) for r in roots)
                   + f" --targets {count} --seed {seed} --steps "
                   + " ".join(str(x) for x in steps),
        "prompt_evaluation": evaluation,
        "requests": len(tasks),
        "same_text": same,
        "prompt_budget": {"prefix": prefix_tokens, "suffix": suffix_tokens},
        "rules": {r.name: {"draft_tokens": r.draft_tokens,
                           "prompt_draft_tokens": r.prompt_draft_tokens,
                           "prompt_draft_keys": list(r.prompt_draft_keys),
                           "generate_ms_mean": _round(mean(times[r.name])),
                           "generate_ms_p50": _round(percentile(times[r.name], 0.5)),
                           "generate_ms_p95": _round(percentile(times[r.name], 0.95)),
                           **counts[r.name]} for r in compared},
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m slm_lsp.bench.decode",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("repos", type=Path, nargs="+", help="repository folders")
    parser.add_argument("--targets", type=int, default=12, help="target lines (2 tasks each)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--prefix-tokens", type=int, default=768)
    parser.add_argument("--suffix-tokens", type=int, default=256)
    parser.add_argument("--steps", type=int, nargs="*", default=[32, 64, 128, 256, 512],
                        help="prompt evaluation batch sizes to time (none: skip)")
    parser.add_argument("--output", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    for root in args.repos:
        if not root.is_dir():
            parser.error(f"{root} is not a folder")
    result = measure(args.repos, args.targets, args.seed, args.prefix_tokens, args.suffix_tokens,
                     args.steps)
    text = json.dumps(result, indent=2)
    sys.stdout.write(text + "\n")
    if args.output:
        args.output.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
