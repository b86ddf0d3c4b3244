"""`python -m slm_lsp.bench.context`: how long the definition context takes, how big it is,
and how often it holds the name a cross-file target needs. No model, no server.

For every target of the dev set (the cross-file set and the random set, the benchmark's
selection and seed), the target's document is masked as the editor would send it and the
definition context is assembled as the server does, with a source tree and resolver per
repository (so files parsed for one target are reused by the next, as in a server). Token
counts use the default model's tokenizer when it is installed, else four characters a
token. Writes ``bench/context.json``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

from prompts.fim import fit_prefix

from ..context import CursorContext
from ..repo_context import DefinitionContext
from ..settings import CompletionSettings, IndexSettings
from ..symbols import SourceTree, resolver_for
from .cli import DEFAULT_DEVSET
from .targets import masked_document, percentile, select_crossfile_targets, select_targets

ROOT = Path(__file__).resolve().parents[2]


def _counter() -> tuple[Any, str]:
    try:
        from ..backends.llama import LlamaBackend
        from ..models import DEFAULT_MODEL, installed_path, known

        path = installed_path(known(DEFAULT_MODEL))
        if path is not None:
            backend = LlamaBackend(path, n_ctx=256)
            return backend.count_tokens, "model"
    except Exception as exc:  # noqa: BLE001 - measure with an estimate instead
        sys.stderr.write(f"no model tokenizer ({exc}); counting 4 characters a token\n")
    return (lambda text: len(text) // 4 + 1), "estimate"


def measure_repo(root: Path, texts: dict[str, str], target_set: str, count: int, seed: int,
                 tokens: Any, prefix_tokens: int, context_tokens: int) -> dict[str, Any]:
    pick = select_crossfile_targets if target_set == "crossfile" else select_targets
    targets = pick(texts, count, seed)
    docs: dict[str, str] = {}
    tree = SourceTree(str(root), open_docs=lambda: docs)
    definitions = DefinitionContext(resolver_for(tree), tokens)
    times, sizes, holds = [], [], 0
    for target in targets:
        column = target.column
        text = masked_document(texts[target.path], target, column)
        path = str(root / target.path)
        docs.clear()
        docs[path] = text
        lines = text.split("\n")
        offset = sum(len(x) + 1 for x in lines[:target.line]) + column
        prefix = text[:offset]
        fitted = fit_prefix(prefix, prefix_tokens, tokens)
        ctx = CursorContext(uri=Path(path).as_uri(), path=target.path, language="python",
                            prefix=prefix, suffix=text[offset:], line=target.line,
                            character=column, band=prefix.count("\n") - fitted.count("\n"))
        started = time.perf_counter()
        files, used = definitions(ctx, context_tokens)
        times.append((time.perf_counter() - started) * 1000)
        sizes.append(used)
        word = re.match(r"[A-Za-z_][A-Za-z0-9_]*", target.text[column:])
        name = word.group(0) if word else ""
        holds += bool(name) and any(name in f.text for f in files)
    return {"targets": len(targets), "ms_p50": _r(percentile(times, 0.5)),
            "ms_p95": _r(percentile(times, 0.95)), "ms_max": _r(max(times, default=None)),
            "tokens_mean": _r(sum(sizes) / len(sizes) if sizes else None),
            "tokens_p95": _r(percentile([float(s) for s in sizes], 0.95)),
            "holds_answer_name": holds}


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m slm_lsp.bench.context",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--devset", type=Path, default=DEFAULT_DEVSET)
    parser.add_argument("--targets", type=int, default=100, help="per repository and set")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--prefix-tokens", type=int, default=CompletionSettings().max_prefix_tokens,
                        help="prompt tokens before the cursor (default: the setting's default)")
    parser.add_argument("--context-tokens", type=int, default=IndexSettings().context_tokens,
                        help="the definition context's budget (default: the setting's default)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "context.json")
    args = parser.parse_args(argv)
    from .cli import devset_repos
    from .run import load_sources

    tokens, counted = _counter()
    out: dict[str, Any] = {"command": "python -m slm_lsp.bench.context " + " ".join(argv or sys.argv[1:]),
                           "tokens": counted, "budget": args.context_tokens,
                           "prefix_tokens": args.prefix_tokens, "repos": {}}
    for repo in devset_repos(args.devset, None):
        texts = load_sources(repo.root)
        out["repos"][repo.name] = {s: measure_repo(repo.root, texts, s, args.targets, args.seed, tokens,
                                                       args.prefix_tokens, args.context_tokens)
                                   for s in ("crossfile", "random")}
        sys.stderr.write(f"{repo.name}: {json.dumps(out['repos'][repo.name])}\n")
    args.out.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
