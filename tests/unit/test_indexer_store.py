"""FaissStore and crash-safe saving: killed writers, corrupt and truncated files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from indexer import persist
from indexer.embedder import HashEmbedder
from indexer.index import RepoIndex
from indexer.persist import CorruptIndex
from indexer.store import FaissStore

REPO_ROOT = Path(__file__).resolve().parents[2]


def unit_rows(n: int, dim: int, seed: int) -> np.ndarray:
    rows = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_faiss_store_add_remove_search_and_round_trip(tmp_path: Path) -> None:
    store = FaissStore(16)
    vectors = unit_rows(5, 16, seed=1)
    store.add([10, 11, 12, 13, 14], vectors)
    assert store.search(vectors[2], 1)[0][0] == 12
    store.remove([12])
    assert len(store) == 4 and 12 not in [i for i, _ in store.search(vectors[2], 4)]
    store.add([12], vectors[2:3] * 1.0)  # replaced under the same id
    store.save(tmp_path / "idx", {"hello": "world"})
    loaded = FaissStore(16)
    assert loaded.load(tmp_path / "idx") == {"hello": "world"}
    assert loaded.search(vectors[2], 1)[0][0] == 12 and len(loaded) == 5


def test_load_rejects_other_dimension(tmp_path: Path) -> None:
    FaissStore(16).save(tmp_path / "idx", {})
    with pytest.raises(CorruptIndex, match="dimension"):
        FaissStore(32).load(tmp_path / "idx")


def test_old_generations_are_cleaned_up(tmp_path: Path) -> None:
    store = FaissStore(8)
    for i in range(3):
        store.save(tmp_path / "idx", {"n": i})
    generations = [p for p in (tmp_path / "idx").iterdir() if p.name.startswith("gen-")]
    assert len(generations) == 1


def _current_generation(cache: Path) -> Path:
    manifest = json.loads((cache / persist.MANIFEST).read_text())
    return cache / manifest["generation"]


def _write_repo(root: Path, marker: str) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "a.py").write_text(f"def {marker}():\n    return '{marker}'\n")
    (root / "b.py").write_text("def helper(x):\n    return x * 2\n")


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete", "manifest"])
def test_corrupt_index_is_detected_and_rebuilt(tmp_path: Path, damage: str,
                                               caplog: pytest.LogCaptureFixture) -> None:
    repo, cache = tmp_path / "repo", tmp_path / "cache"
    _write_repo(repo, "first")
    RepoIndex(repo, cache, embedder=HashEmbedder()).build()
    vectors = _current_generation(cache) / "vectors.faiss"
    if damage == "truncate":
        vectors.write_bytes(vectors.read_bytes()[:100])
    elif damage == "flip":
        data = bytearray(vectors.read_bytes())
        data[len(data) // 2] ^= 0xFF
        vectors.write_bytes(bytes(data))
    elif damage == "delete":
        vectors.unlink()
    else:
        (cache / persist.MANIFEST).write_text("{not json")
    index = RepoIndex(repo, cache, embedder=HashEmbedder())
    assert not index.load()
    assert "unusable" in caplog.text
    stats = index.build()
    assert stats.files == 2 and stats.reused == 0 and stats.embedded == stats.chunks
    assert RepoIndex(repo, cache, embedder=HashEmbedder()).load()


# A child process that saves a second generation and stops at a chosen point,
# announcing it on stdout, so the test can SIGKILL it mid-write.
CHILD = textwrap.dedent("""
    import sys, time
    from indexer import persist
    from indexer.embedder import HashEmbedder
    from indexer.index import RepoIndex

    repo, cache, hook, when = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    original = getattr(persist, hook)
    calls = []

    def paused(*args):
        result = original(*args)
        calls.append(1)
        if len(calls) == when:
            print("PAUSED", flush=True)
            time.sleep(60)
        return result

    setattr(persist, hook, paused)
    RepoIndex(repo, cache, embedder=HashEmbedder()).build()
    print("FINISHED", flush=True)
""")


@pytest.mark.parametrize(("hook", "when"), [
    ("_written", 1),      # vectors of the new generation written (streamed by FAISS)
    ("_written", 2),      # both files written (the metadata streamed too), not renamed
    ("fsync_dir", 2),     # generation folder renamed into place, manifest not switched
    ("_write_file", 1),   # new manifest staged but not yet os.replace'd
])
def test_killed_save_leaves_previous_generation_loadable(tmp_path: Path, hook: str,
                                                         when: int) -> None:
    repo, cache = tmp_path / "repo", tmp_path / "cache"
    _write_repo(repo, "first")
    RepoIndex(repo, cache, embedder=HashEmbedder()).build()
    _write_repo(repo, "second")
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), HF_HUB_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1")
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(repo), str(cache), hook,
                              str(when)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "PAUSED"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    index = RepoIndex(repo, cache, embedder=HashEmbedder())
    assert index.load()
    assert any(c.symbol == "first" for c in index.chunks_of("a.py"))
    stats = index.build()  # and the next save works, clearing the debris
    assert stats.files == 2 and stats.reused == 1
    leftovers = [p.name for p in cache.iterdir() if p.name.startswith((".tmp-", "gen-"))]
    assert len(leftovers) == 1
    assert any(c.symbol == "second" for c in
               RepoIndex(repo, cache, embedder=HashEmbedder()).chunks_of("a.py"))


def test_streamed_vectors_are_the_bytes_serialize_index_gives(tmp_path: Path) -> None:
    import faiss

    from indexer.store import VECTORS_FILE

    store = FaissStore(8)
    store.add([3, 5, 9], np.eye(3, 8, dtype=np.float32))
    store.save(tmp_path, {"n": 3})
    info, files = persist.read_generation(tmp_path)  # sizes and checksums checked
    assert files[VECTORS_FILE] == faiss.serialize_index(store._index).tobytes()
    again = FaissStore(8)
    assert again.load(tmp_path) == {"n": 3} and len(again) == 3


def test_a_writer_file_is_checked_like_bytes(tmp_path: Path) -> None:
    persist.write_generation(tmp_path, {"a": b"alpha", "b": lambda p: p.write_bytes(b"beta")},
                             {"k": 1})
    info, files = persist.read_generation(tmp_path)
    assert files == {"a": b"alpha", "b": b"beta"} and info == {"k": 1}
    generation = next(p for p in tmp_path.iterdir() if p.name.startswith("gen-"))
    (generation / "b").write_bytes(b"bets")
    with pytest.raises(CorruptIndex):
        persist.read_generation(tmp_path)


def test_streamed_metadata_is_the_bytes_json_dumps_gives(tmp_path: Path) -> None:
    from indexer.store import META_FILE

    meta = {"format": 3, "root": "/tmp/r\u00e9po", "empty": [], "none": {},
            "files": {"a.py": ["d1", "python", [1, 2]], "b \"q\".py": ["d2", None, []]},
            "chunks": [[1, "a.py", "python", 0, 4, "f", "function", "def f():\n\treturn '\u00fc'\n"],
                       [2, "a.py", "python", 5, 9, None, "block", "x = {\"k\": 1}"]]}
    path = tmp_path / "meta.json"
    persist.json_writer(meta)(path)
    assert path.read_bytes() == json.dumps(meta, separators=(",", ":")).encode()
    store = FaissStore(8)
    store.add([1, 2], np.eye(2, 8, dtype=np.float32))
    store.save(tmp_path / "store", meta)
    _, files = persist.read_generation(tmp_path / "store")
    assert json.loads(files[META_FILE]) == meta
    assert FaissStore(8).load(tmp_path / "store") == meta
