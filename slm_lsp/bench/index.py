"""Indexing benchmark on the dev-set packages: cold build, unchanged re-index, search latency.

    python -m slm_lsp.bench.index [--devset ../shared/bench/devset.toml] [--output BENCH_INDEX.md]

Each dev-set package's wheel is fetched with `pip download --no-deps` into
`.bench/wheels/`, its package folders are unpacked into `.bench/src/NAME-VERSION/`
(treated as a repository), indexed cold with the real embedder into
`.bench/index/NAME-VERSION/`, then re-indexed unchanged. The Markdown report is
written by this command, never by hand.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shlex
import shutil
import statistics
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from indexer import persist
from indexer.embedder import SentenceTransformerEmbedder
from indexer.index import IndexStats, RepoIndex

from .machine import cpu_model

REPO = Path(__file__).resolve().parents[2]
BENCH_DIR = REPO / ".bench"
DEFAULT_DEVSET = REPO.parent / "shared" / "bench" / "devset.toml"
QUERIES_PER_REPO = 30


@dataclass(frozen=True)
class Package:
    """One dev-set entry: a display name and a pinned PyPI requirement."""

    name: str
    requirement: str

    @property
    def dist(self) -> str:
        """Distribution name as spelled in wheel file names."""
        return self.requirement.split("==")[0].strip().lower().replace("-", "_")

    @property
    def version(self) -> str:
        """The pinned version."""
        return self.requirement.split("==")[1].strip()

    @property
    def slug(self) -> str:
        """`name-version`, used for folder names."""
        return f"{self.dist}-{self.version}"


@dataclass(frozen=True)
class Result:
    """Measurements for one package."""

    package: Package
    cold: IndexStats
    warm: IndexStats
    size_bytes: int
    query_p50_ms: float
    query_p95_ms: float


def read_devset(path: Path) -> list[Package]:
    """Packages listed as `[[repo]]` tables with `name` and `pypi` keys."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return [Package(str(r["name"]), str(r["pypi"])) for r in data.get("repo", [])]


def fetch_wheel(package: Package) -> Path:
    """The package's wheel in `.bench/wheels`, downloaded with pip if not there yet."""
    wheels = BENCH_DIR / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    found = sorted(wheels.glob(f"{package.slug}-*.whl"))
    if not found:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir",
                        "--only-binary", ":all:", "--quiet", "-d", str(wheels),
                        package.requirement], check=True)
        found = sorted(wheels.glob(f"{package.slug}-*.whl"))
    if not found:
        raise RuntimeError(f"pip downloaded no wheel for {package.requirement}")
    return found[0]


def unpack(package: Package, wheel: Path) -> Path:
    """Extract the wheel's package folders (not its metadata) into `.bench/src/SLUG`."""
    target = BENCH_DIR / "src" / package.slug
    if target.is_dir():
        return target
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    with zipfile.ZipFile(wheel) as archive:
        members = [m for m in archive.namelist()
                   if not m.split("/")[0].endswith((".dist-info", ".data"))]
        archive.extractall(staging, members)
    staging.rename(target)
    return target


def sample_queries(index: RepoIndex, count: int) -> list[str]:
    """Deterministic queries: the first code line of randomly chosen chunks."""
    rng = random.Random(0)
    files = index.files()
    queries: list[str] = []
    for _ in range(count * 4):
        chunks = index.chunks_of(rng.choice(files)) if files else []
        lines = [ln.strip() for c in chunks[:1] for ln in c.text.splitlines() if ln.strip()]
        if lines:
            queries.append(rng.choice(lines)[:120])
        if len(queries) == count:
            break
    return queries


def measure_queries(index: RepoIndex, queries: list[str]) -> tuple[float, float]:
    """p50 and p95 search latency in milliseconds (no budget, k=8)."""
    index.search("warm up", k=8)
    times: list[float] = []
    for query in queries:
        start = time.perf_counter()
        index.search(query, k=8)
        times.append((time.perf_counter() - start) * 1000)
    if not times:
        return 0.0, 0.0
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(0.95 * len(times)))]


def bench_package(package: Package, embedder: SentenceTransformerEmbedder) -> Result:
    """Cold build, unchanged re-index and query latency for one package."""
    root = unpack(package, fetch_wheel(package))
    cache = BENCH_DIR / "index" / package.slug
    shutil.rmtree(cache, ignore_errors=True)
    cold = RepoIndex(root, cache, embedder=embedder).build()
    warm_index = RepoIndex(root, cache, embedder=embedder)
    warm = warm_index.build()
    p50, p95 = measure_queries(warm_index, sample_queries(warm_index, QUERIES_PER_REPO))
    result = Result(package, cold, warm, persist.disk_size(cache), p50, p95)
    sys.stderr.write(f"{package.name}: {cold.files} files, {cold.chunks} chunks, "
                     f"cold {cold.seconds:.1f}s, unchanged {warm.seconds:.2f}s\n")
    return result


def _mib(size: int) -> str:
    """Bytes as MiB with two decimals."""
    return f"{size / 2**20:.2f} MiB"


def render(results: list[Result], command: str, load_seconds: float, threads: int,
           load_before: str) -> str:
    """The Markdown report."""
    lines = [
        "# Indexing benchmark",
        "",
        "Written by `slm_lsp.bench.index`; do not edit by hand. Each package folder from the",
        "dev set is indexed cold with the real embedder (all-MiniLM-L6-v2, CPU), then",
        "re-indexed with no file changed (files are re-hashed, nothing is re-embedded).",
        "",
        "| repo | files | chunks | cold s | chunks/s | unchanged re-index s | speed-up "
        "| index size on disk |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(_row(r.package.requirement, r.cold, r.warm, r.size_bytes))
    if len(results) > 1:
        lines.append(_total_row(results))
    lines += [
        "",
        "Search latency (hybrid dense + lexical, k=8, no budget, "
        f"{QUERIES_PER_REPO} queries per repo taken from the code):",
        "",
        "| repo | p50 ms | p95 ms |",
        "| --- | ---: | ---: |",
    ]
    lines += [f"| {r.package.requirement} | {r.query_p50_ms:.1f} | {r.query_p95_ms:.1f} |"
              for r in results]
    lines += [
        "",
        "## Machine",
        "",
        f"- CPU: {cpu_model()}, {os.cpu_count()} cores; embedder threads: {threads}",
        f"- Python {platform.python_version()} on {platform.system()} {platform.release()}",
        f"- load average (1, 5, 15 min) before the run: {load_before}; after: {_load()} "
        "(other work on the machine slows the cold builds)",
        f"- embedding model load (not included above): {load_seconds:.1f} s",
        "",
        "## Command",
        "",
        "```",
        command,
        "```",
        "",
    ]
    return "\n".join(lines)


def _row(name: str, cold: IndexStats, warm: IndexStats, size: int) -> str:
    """One table row."""
    rate = cold.chunks / cold.seconds if cold.seconds else 0.0
    speedup = cold.seconds / warm.seconds if warm.seconds else 0.0
    return (f"| {name} | {cold.files} | {cold.chunks} | {cold.seconds:.1f} | {rate:.1f} | "
            f"{warm.seconds:.2f} | {speedup:.0f}x | {_mib(size)} |")


def _total_row(results: list[Result]) -> str:
    """The sum over all packages."""
    cold = IndexStats(sum(r.cold.files for r in results), sum(r.cold.chunks for r in results),
                      {}, sum(r.cold.seconds for r in results))
    warm = IndexStats(0, 0, {}, sum(r.warm.seconds for r in results))
    return _row("**total**", cold, warm, sum(r.size_bytes for r in results))


def _load() -> str:
    """The system load averages, or n/a."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write the report."""
    parser = argparse.ArgumentParser(prog="python -m slm_lsp.bench.index",
                                     description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--devset", type=Path, default=DEFAULT_DEVSET)
    parser.add_argument("--output", type=Path, default=REPO / "BENCH_INDEX.md")
    args = parser.parse_args(argv)
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    load_before = _load()
    packages = read_devset(args.devset)
    threads = os.cpu_count() or 1
    embedder = SentenceTransformerEmbedder(threads=threads)
    start = time.perf_counter()
    embedder.load()
    load_seconds = time.perf_counter() - start
    results = [bench_package(p, embedder) for p in packages]
    command = shlex.join(["python", "-m", "slm_lsp.bench.index", *(argv or sys.argv[1:])])
    args.output.write_text(render(results, command, load_seconds, threads, load_before),
                           encoding="utf-8")
    sys.stderr.write(f"wrote {args.output}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
