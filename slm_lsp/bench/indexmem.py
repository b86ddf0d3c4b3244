"""`python -m slm_lsp.bench.indexmem REPO`: what an index of REPO holds in memory, by part.

Builds a `RepoIndex` of REPO in a temporary folder with the hashing embedder at the real
embedder's width (384: the vectors take the room the real ones take; no model is loaded,
so the build takes minutes, not an hour), then frees its parts one by one (the lexical
index, the chunk records, the vector store, the file table) and reads the resident memory
(VmRSS, after a garbage collection and `malloc_trim`) before and after each. Before that
it saves the whole index once more and records how far above the resident memory the
save went (VmHWM, reset just before). What is left
at the end is the libraries the build loaded (FAISS, tree-sitter grammars) and what the
heap keeps. The total is the figure to trust: a heap page is returned only when its last
object goes, so a part's figure also holds pages that parts freed before it left behind.
Writes one JSON object to ``--out`` (default: standard output).
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from indexer.embedder import HashEmbedder
from indexer.index import RepoIndex
from indexer.lexical import LexicalIndex
from indexer.store import FaissStore

from ..memory import trim
from .machine import commit, machine, mib, proc_status
from .session import PROJECT

DIM = 384
"""all-MiniLM-L6-v2's vector width."""


def rss_mib() -> float:
    """This process's resident memory after a collection and a heap trim."""
    gc.collect()
    trim()
    resident = mib(proc_status().get("VmRSS"))
    if resident is None:
        raise RuntimeError("no VmRSS in /proc/self/status")
    return resident


def reset_peak() -> bool:
    """Start VmHWM again from the resident memory now (Linux: ``clear_refs`` 5)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


def save_above_resident(index: RepoIndex) -> float | None:
    """How far above the resident memory a full save of ``index`` goes (MiB), or None
    where the peak cannot be reset."""
    resident = rss_mib()
    if not reset_peak():
        return None
    index._dirty = True
    index.save()
    peak = mib(proc_status().get("VmHWM"))  # the peak since the reset
    return None if peak is None else round(peak - resident, 1)


def measure(root: Path) -> dict[str, Any]:
    """Build the index of ``root`` and free its parts in turn; MiB each part held."""
    before = rss_mib()
    with tempfile.TemporaryDirectory(prefix="slm-indexmem-") as tmp:
        index = RepoIndex(root, Path(tmp), embedder=HashEmbedder(DIM))
        started = time.perf_counter()
        stats = index.build()
        seconds = round(time.perf_counter() - started, 1)
        built = rss_mib()
        save_peak = save_above_resident(index)
        lexical = index._lexical
        sizes = {"files": stats.files, "chunks": stats.chunks,
                 "chunk_text_mib": round(sum(len(c.text) for c in index._chunks.values())
                                         / 2**20, 1),
                 "lexical_terms": len(lexical._postings),
                 "lexical_postings": sum(len(p) for p in lexical._postings.values())}
        del lexical
        parts: dict[str, float] = {}
        last = built

        def freed(name: str) -> None:
            nonlocal last
            now = rss_mib()
            parts[name] = round(last - now, 1)
            last = now

        index._lexical = LexicalIndex()
        freed("lexical index")
        index._chunks = {}
        freed("chunk records")
        index.store = FaissStore(DIM)
        freed("vector store")
        index._files = {}
        freed("file table")
    return {"repo": str(root), "build_s": seconds, **sizes, "rss_before_build_mib": before,
            "rss_built_mib": built, "index_mib": round(built - before, 1),
            "save_above_resident_mib": save_peak,
            "parts_mib": parts, "left_mib": round(last - before, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m slm_lsp.bench.indexmem",
                                     description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("repo", type=Path)
    parser.add_argument("--out", type=Path, help="write the JSON here (default: stdout)")
    args = parser.parse_args(argv)
    if not args.repo.is_dir():
        parser.error(f"{args.repo} is not a folder")
    result = measure(args.repo.resolve())
    result.update(machine=machine(), commit=commit(PROJECT),
                  command=" ".join(["python", "-m", "slm_lsp.bench.indexmem",
                                    *(sys.argv[1:] if argv is None else argv)]))
    text = json.dumps(result, indent=2) + "\n"
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
