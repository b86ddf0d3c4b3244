"""Retrieval quality with the real all-MiniLM-L6-v2 embedder on a real repository."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import pathspec  # noqa: E402 - the repository under test: an installed pure-Python package

from indexer.embedder import SentenceTransformerEmbedder  # noqa: E402
from indexer.index import RepoIndex  # noqa: E402

pytestmark = [pytest.mark.embedder, pytest.mark.slow]

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGE = Path(pathspec.__file__).parent


@pytest.fixture(scope="module")
def embedder() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(threads=os.cpu_count())


@pytest.fixture(scope="module")
def index(embedder: SentenceTransformerEmbedder,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[RepoIndex]:
    built = RepoIndex(PACKAGE, tmp_path_factory.mktemp("pathspec-index"), embedder=embedder)
    stats = built.build()
    assert stats.files > 20 and stats.chunks > 100
    yield built


def test_embedder_vectors(embedder: SentenceTransformerEmbedder) -> None:
    vectors = embedder.embed(["read a file from disk", "load the contents of a file",
                              "the weather is sunny today"])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2
    assert os.environ["HF_HUB_OFFLINE"] == "1"


@pytest.mark.parametrize(("query", "defining_file"), [
    # _GitIgnoreBasePattern._translate_segment_glob
    ("translate shell wildcard characters like asterisk, question mark and bracket ranges "
     "into regex syntax", "patterns/gitignore/base.py"),
    # util.register_pattern
    ("register a factory under a name so patterns can be looked up by that name later",
     "util.py"),
    # GitIgnoreSpec (from_lines)
    ("build a matcher from the lines of an ignore file that replicates how git itself "
     "treats them", "gitignore.py"),
])
def test_description_retrieves_defining_file(index: RepoIndex, query: str,
                                             defining_file: str) -> None:
    paths = [hit.chunk.path for hit in index.search(query, k=3)]
    assert defining_file in paths, paths


def test_unchanged_reindex_reuses_everything(index: RepoIndex,
                                             embedder: SentenceTransformerEmbedder) -> None:
    again = RepoIndex(PACKAGE, index.cache_dir, embedder=embedder).build()
    assert again.embedded == 0 and again.reused == again.files == index.stats().files


def test_search_within_budget_after_warm_up(index: RepoIndex) -> None:
    index.search("warm up the query path", k=8)
    hits = index.search("normalize a file path", k=8, budget_ms=100)
    assert hits and any(hit.dense is not None for hit in hits)


def test_cli_index_and_search(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "geometry.py").write_text(
        "import math\n\n\ndef circle_area(radius):\n    return math.pi * radius ** 2\n")
    (repo / "strings.py").write_text(
        "def shout(text):\n    return text.upper() + '!'\n")
    env = dict(os.environ, SLM_LSP_HOME=str(tmp_path / "home"), PYTHONPATH=str(REPO_ROOT))
    run = [sys.executable, "-m", "slm_lsp"]
    out = subprocess.run([*run, "index", str(repo), "--json"], env=env, check=True,
                         capture_output=True, text=True, timeout=300).stdout
    stats = json.loads(out.strip().splitlines()[-1])
    assert stats["files"] == 2 and stats["languages"] == {"python": 2}
    out = subprocess.run([*run, "search", "surface of a round shape", "--root", str(repo),
                          "-k", "1", "--json"], env=env, check=True, capture_output=True,
                         text=True, timeout=300).stdout
    assert json.loads(out)["results"][0]["path"] == "geometry.py"


def run_python(code: str) -> str:
    """The output of ``code`` run by a fresh interpreter in the project (offline)."""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=REPO_ROOT, timeout=300, check=False,
                            env=dict(os.environ, HF_HUB_OFFLINE="1"))
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_loading_leaves_scikit_learn_unimported_and_working() -> None:
    """sentence-transformers imports scikit-learn for a function we never call; the
    embedder defers it (~40 MiB). The deferred function still works when called."""
    code = (
        "import sys\n"
        "from indexer.embedder import SentenceTransformerEmbedder\n"
        "e = SentenceTransformerEmbedder(threads=1)\n"
        "print(e.embed(['def f(): pass']).shape)\n"
        "print('sklearn' in sys.modules)\n"
        "from sentence_transformers.util.similarity import pairwise_distances\n"
        "print(pairwise_distances([[0.0, 1.0]], [[3.0, 5.0]], metric='manhattan')[0][0])\n"
        "print('sklearn' in sys.modules)\n"
    )
    assert run_python(code).split("\n")[:4] == ["(1, 384)", "False", "7.0", "True"]


def test_the_whole_weights_file_is_resident_once_loaded() -> None:
    """The weights are a mapped view of the model file; the load reads them all, so the
    word embeddings' rows do not page in one by one as later texts bring new words."""
    code = (
        "import os\n"
        "from indexer.embedder import SentenceTransformerEmbedder, model_dir\n"
        "from slm_lsp.bench.soak import mappings\n"
        "e = SentenceTransformerEmbedder(threads=1)\n"
        "e.load()\n"
        "print(mappings(os.getpid()).get('model.safetensors', 0.0))\n"
        "print((model_dir() / 'model.safetensors').stat().st_size / 2**20)\n"
    )
    resident, size = (float(v) for v in run_python(code).split())
    assert size > 50 and resident >= 0.98 * size, (resident, size)
