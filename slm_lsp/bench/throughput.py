"""`python -m slm_lsp.bench.throughput --label NAME`: how fast this llama.cpp build runs the model.

The prompt is the first ``--tokens`` tokens of a fixed source file of this repository,
evaluated from an empty cache in one batch and in the server's request step
(``KVCache.CANCEL_STEP``), best of ``--repeat``; generation is ``--generate`` greedy
tokens after it, without drafts. The row for ``--label`` in ``--out`` (a JSON file of
rows by label) is replaced, and the Markdown table next to it is re-rendered, so one
command per build fills the table that compares them (see ``docs/latency.md``).

The row records what the build really used: llama.cpp's system line (the CPU features
of the kernels that were loaded) and the CPU variant module, when the build has several.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from prompts.fim import Segment

from ..backends.kv import KVCache
from ..backends.llama import LlamaBackend
from ..backends.native import cpu_variants, system_info
from ..models import DEFAULT_MODEL, installed_path, known
from .machine import cpu_model

ROOT = Path(__file__).resolve().parents[2]
TEXT = ROOT / "slm_lsp" / "backends" / "kv.py"


def timed_eval(backend: LlamaBackend, tokens: list[int], step: int, repeat: int) -> float:
    """Best milliseconds to evaluate ``tokens`` from an empty cache in batches of ``step``."""
    best = float("inf")
    for _ in range(repeat):
        backend.kv.clear()
        backend.kv.step = step
        started = time.perf_counter()
        backend.kv.sync(tokens)
        best = min(best, (time.perf_counter() - started) * 1000)
    backend.kv.step = KVCache.CANCEL_STEP
    backend.kv.clear()
    return best


def measure(model: Path, n_tokens: int, n_generate: int, repeat: int, threads: int) -> dict[str, Any]:
    backend = LlamaBackend(model, n_ctx=n_tokens + n_generate + 64, n_batch=512, n_threads=threads)
    try:
        text = TEXT.read_text(encoding="utf-8")
        tokens = backend.tokenize(text)[:n_tokens]
        if len(tokens) < n_tokens:
            raise SystemExit(f"{TEXT} has only {len(tokens)} tokens")
        prompt = [Segment(backend.text_of(tokens).decode("utf-8", "replace"))]
        one_batch = timed_eval(backend, tokens, 512, repeat)
        stepped = timed_eval(backend, tokens, KVCache.CANCEL_STEP, repeat)
        backend.draft_tokens = 0
        backend.prompt_draft_tokens = 0
        gens = []
        for _ in range(repeat):
            backend.kv.clear()
            gen = backend.generate(prompt, max_tokens=n_generate)
            gens.append(gen.n_generated / gen.generate_ms * 1000 if gen.generate_ms else 0.0)
        return {
            "prompt_tokens": len(tokens),
            "prompt_tokens_per_s": round(len(tokens) / one_batch * 1000, 1),
            f"prompt_tokens_per_s_step{KVCache.CANCEL_STEP}": round(len(tokens) / stepped * 1000, 1),
            "generate_tokens": n_generate,
            "generate_tokens_per_s": round(max(gens), 1),
            "threads": backend.threads,
            "system_info": system_info(),
            "cpu_variants": cpu_variants(),
        }
    finally:
        backend.close()


def render(rows: dict[str, Any]) -> str:
    step = f"prompt_tokens_per_s_step{KVCache.CANCEL_STEP}"
    models = sorted({row.get("model", "") for row in rows.values()})
    same = len(models) == 1
    lines = [
        "# llama.cpp builds compared" if same else "# Model files compared",
        "",
        "Written by `python -m slm_lsp.bench.throughput` (one row per `--label`; see its docstring).",
        "Prompt: tokens/s evaluating the prompt from an empty cache in one batch of 512 and in",
        f"the server's request step of {KVCache.CANCEL_STEP}; generation: greedy tokens/s, no drafts.",
        "Best of the repeats; the same prompt and thread count in every row"
        + (f", the same model ({models[0]})." if same else "; the model file is in its column."),
        "",
        f"| {'build' if same else 'row'} | CPU |{'' if same else ' model |'} prompt t/s | "
        f"prompt t/s (step {KVCache.CANCEL_STEP}) | generation t/s | kernels loaded |",
        "|---|---|" + ("" if same else "---|") + "---:|---:|---:|---|",
    ]
    for label, row in rows.items():
        loaded = row.get("cpu_variants") or ["(built in)"]
        features = [part.strip() for part in row["system_info"].split("|")
                    if part.strip().endswith("= 1") and "AVX" in part]
        model = "" if same else f" {row.get('model', '')} |"
        lines.append(f"| {label} | {row['cpu']} |{model} {row['prompt_tokens_per_s']} | {row[step]} | "
                     f"{row['generate_tokens_per_s']} | {', '.join(loaded)}: "
                     f"{' '.join(f.split(' =')[0] for f in features) or '-'} |")
    lines += ["", "Build flags per row:", ""]
    lines += [f"- {label}: `{row.get('cmake_args') or '(not given)'}`" for label, row in rows.items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m slm_lsp.bench.throughput",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--label", required=True, help="name of this build's row")
    parser.add_argument("--cmake-args", default="", help="the flags this build was made with (recorded)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "throughput.json")
    parser.add_argument("--tokens", type=int, default=512)
    parser.add_argument("--generate", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="0: the server's default")
    parser.add_argument("--model", type=Path, help="GGUF file (default: the installed default model)")
    parser.add_argument("--render", action="store_true",
                        help="only write the Markdown table again from --out")
    args = parser.parse_args(argv)
    if args.render:
        saved = json.loads(args.out.read_text(encoding="utf-8"))
        args.out.with_suffix(".md").write_text(render(saved), encoding="utf-8")
        return 0
    model = args.model or installed_path(known(DEFAULT_MODEL))
    if model is None:
        parser.error("the default model is not installed: slm-lsp model install")
    row = measure(model, args.tokens, args.generate, args.repeat, args.threads)
    row.update(cpu=cpu_model(), model=model.name, model_bytes=model.stat().st_size,
               cmake_args=args.cmake_args,
               llama_cpp_python=_llama_version())
    rows: dict[str, Any] = {}
    if args.out.exists():
        rows = json.loads(args.out.read_text(encoding="utf-8"))
    rows[args.label] = row
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    args.out.with_suffix(".md").write_text(render(rows), encoding="utf-8")
    sys.stderr.write(json.dumps({args.label: row}, indent=2) + "\n")
    return 0


def _llama_version() -> str:
    from importlib.metadata import version

    return version("llama-cpp-python")


if __name__ == "__main__":
    raise SystemExit(main())
