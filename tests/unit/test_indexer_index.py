"""RepoIndex with the hashing embedder: incremental builds, live updates, hybrid search."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from indexer.embedder import HashEmbedder
from indexer.index import IndexProgress, RepoIndex

FILES = {
    "billing/invoice.py": '''\
"""Invoices."""


def compute_invoice_total(lines, tax_rate):
    """Sum the invoice lines and add tax."""
    subtotal = sum(line.price * line.quantity for line in lines)
    return round(subtotal * (1 + tax_rate), 2)
''',
    "auth/session.py": '''\
import hashlib


def hash_password(password, salt):
    """Derive a password hash with PBKDF2."""
    return hashlib.pbkdf2_hmac("sha256", password.encode(), salt, 100_000)


class SessionStore:
    """Keeps login sessions in memory."""

    def __init__(self):
        self.sessions = {}

    def create_session(self, user_id):
        token = hashlib.sha256(str(user_id).encode()).hexdigest()
        self.sessions[token] = user_id
        return token
''',
    "web/router.js": '''\
export function parseQueryString(query) {
  const params = {};
  for (const pair of query.split("&")) {
    const [key, value] = pair.split("=");
    params[decodeURIComponent(key)] = decodeURIComponent(value ?? "");
  }
  return params;
}
''',
    "README.md": "# Shop\n\nA tiny shop with invoices and sessions.\n",
}


class SpyEmbedder(HashEmbedder):
    """HashEmbedder that records the texts it embedded and the size of every call."""

    def __init__(self) -> None:
        super().__init__(dim=128)
        self.texts: list[str] = []
        self.calls: list[int] = []

    def embed(self, texts: list[str]) -> np.ndarray:
        self.texts.extend(texts)
        self.calls.append(len(texts))
        return super().embed(texts)


def make_repo(root: Path, files: dict[str, str] = FILES) -> Path:
    """Write the sample repository."""
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


def new_index(repo: Path, cache: Path, embedder: HashEmbedder | None = None) -> RepoIndex:
    return RepoIndex(repo, cache, embedder=embedder or SpyEmbedder())


def test_build_reports_stats_and_progress(repo: Path, tmp_path: Path) -> None:
    events: list[IndexProgress] = []
    stats = new_index(repo, tmp_path / "cache").build(progress=events.append)
    assert stats.files == 4
    assert stats.languages == {"javascript": 1, "md": 1, "python": 2}
    assert stats.chunks >= 4 and stats.reused == 0 and stats.embedded == stats.chunks
    assert events[0].phase == "scanning" and events[-1].phase == "done"
    assert events[-1].files_done == events[-1].files_total == 4


def test_unchanged_rebuild_reuses_everything_and_embeds_nothing(repo: Path,
                                                                tmp_path: Path) -> None:
    first = new_index(repo, tmp_path / "cache").build()
    spy = SpyEmbedder()
    again = new_index(repo, tmp_path / "cache", spy)
    stats = again.build()
    assert spy.texts == []
    assert stats.reused == 4 and stats.embedded == 0
    assert (stats.files, stats.chunks) == (first.files, first.chunks)


def test_changed_file_reembeds_only_its_chunks(repo: Path, tmp_path: Path) -> None:
    new_index(repo, tmp_path / "cache").build()
    (repo / "billing/invoice.py").write_text(
        FILES["billing/invoice.py"] + "\n\ndef refund(amount):\n    return -amount\n")
    (repo / "README.md").unlink()
    spy = SpyEmbedder()
    index = new_index(repo, tmp_path / "cache", spy)
    stats = index.build()
    assert stats.reused == 2 and stats.files == 3
    assert spy.texts and all(t.startswith("billing/invoice.py") for t in spy.texts)
    assert len(spy.texts) == len(index.chunks_of("billing/invoice.py"))
    assert "README.md" not in index.files()


def test_hybrid_search_finds_relevant_chunks(repo: Path, tmp_path: Path) -> None:
    index = new_index(repo, tmp_path / "cache")
    index.build()
    hits = index.search("hash a password with a salt", k=3)
    assert hits[0].chunk.path == "auth/session.py"
    assert hits[0].chunk.symbol == "hash_password"
    assert hits[0].dense is not None and hits[0].lexical is not None
    top = index.search("parse query string parameters", k=1)[0]
    assert top.chunk.path == "web/router.js"
    assert index.search("invoice total with tax", k=1)[0].chunk.symbol == "compute_invoice_total"


def test_search_never_returns_excluded_paths(repo: Path, tmp_path: Path) -> None:
    index = new_index(repo, tmp_path / "cache")
    index.build()
    hits = index.search("hash password session token", k=10,
                        exclude_paths=[repo / "auth/session.py"])
    assert hits and all(h.chunk.path != "auth/session.py" for h in hits)
    relative = index.search("session", k=10, exclude_paths=["auth/session.py"])
    assert all(h.chunk.path != "auth/session.py" for h in relative)


def test_search_budget_skips_the_slow_part(repo: Path, tmp_path: Path) -> None:
    index = new_index(repo, tmp_path / "cache")
    index.build()
    index._cost_ms["dense"] = 500.0  # pretend embedding a query is slow
    hits = index.search("hash password", k=3, budget_ms=50)
    assert hits and all(h.dense is None and h.lexical is not None for h in hits)


def test_update_file_uses_unsaved_text_and_refuses_secrets(repo: Path, tmp_path: Path) -> None:
    index = new_index(repo, tmp_path / "cache")
    index.build()
    assert index.update_file(repo / "web/router.js",
                             "export function slugifyTitle(title) {\n"
                             "  return title.toLowerCase().replace(/ /g, '-');\n}\n")
    assert index.search("slugify title", k=1)[0].chunk.symbol == "slugifyTitle"
    assert not index.update_file(repo / ".env", "API_KEY=123\n")
    assert not index.update_file(repo / "id_rsa", "-----BEGIN OPENSSH PRIVATE KEY-----\n")
    (repo / ".gitignore").write_text("scratch/\n")
    assert not index.update_file(repo / "scratch/notes.py", "def scratch(): pass\n")
    assert not index.update_file(tmp_path / "outside.py", "x = 1\n")
    assert all(".env" not in f and "scratch" not in f for f in index.files())


def test_remove_file_and_folder(repo: Path, tmp_path: Path) -> None:
    index = new_index(repo, tmp_path / "cache")
    index.build()
    assert index.remove_file(repo / "web/router.js") == 1
    assert index.remove_file("auth") == 1
    assert index.files() == ["README.md", "billing/invoice.py"]
    assert all(h.chunk.path in index.files() for h in index.search("session router", k=10))


def test_saved_index_loads_in_a_new_instance(repo: Path, tmp_path: Path) -> None:
    built = new_index(repo, tmp_path / "cache")
    built.build()
    loaded = new_index(repo, tmp_path / "cache")
    assert loaded.load()
    assert loaded.stats() == built.stats()
    assert loaded.search("password hash", k=1)[0].chunk.symbol == "hash_password"


def test_other_embedder_forces_rebuild(repo: Path, tmp_path: Path,
                                       caplog: pytest.LogCaptureFixture) -> None:
    new_index(repo, tmp_path / "cache").build()
    other = RepoIndex(repo, tmp_path / "cache", embedder=HashEmbedder(dim=64))
    assert not other.load()
    assert "rebuilt" in caplog.text
    stats = other.build()
    assert stats.reused == 0 and stats.embedded == stats.chunks > 0


def test_cancel_stops_early_and_keeps_work_done(repo: Path, tmp_path: Path) -> None:
    cancel = threading.Event()
    cancel.set()
    stats = new_index(repo, tmp_path / "cache").build(cancel=cancel)
    assert stats.cancelled and stats.files == 0
    assert new_index(repo, tmp_path / "cache").build().files == 4


def test_concurrent_searches_during_updates(repo: Path, tmp_path: Path) -> None:
    index = new_index(repo, tmp_path / "cache")
    index.build()
    errors: list[BaseException] = []

    def searcher() -> None:
        try:
            for _ in range(50):
                index.search("password session invoice", k=5)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=searcher) for _ in range(3)]
    for thread in threads:
        thread.start()
    for i in range(30):
        index.update_file(repo / "billing/invoice.py", f"def f{i}(x):\n    return x + {i}\n")
    for thread in threads:
        thread.join()
    assert errors == []
    assert index.stats().files == 4


def test_overlapping_windows_are_not_returned_twice(tmp_path: Path) -> None:
    body = "".join(f"    total += compute_weight({i})\n" for i in range(120))
    repo = make_repo(tmp_path / "repo", {"big.py": f"def big():\n    total = 0\n{body}"
                                                   "    return total\n"})
    index = new_index(repo, tmp_path / "cache")
    chunks = index.build().chunks
    hits = index.search("compute weight total", k=8)
    spans = sorted((h.chunk.start_line, h.chunk.end_line) for h in hits)
    assert chunks >= 3 and 1 <= len(hits) < chunks
    assert all(a[1] < b[0] for a, b in zip(spans, spans[1:], strict=False))


def test_build_reports_the_embedding_phase_and_the_editor_says_so(repo: Path, tmp_path: Path) -> None:
    from slm_lsp.features.index import progress_message

    events: list[IndexProgress] = []
    new_index(repo, tmp_path / "cache").build(progress=events.append)
    phases = [e.phase for e in events]
    assert "embedding" in phases and phases.index("scanning") < phases.index("embedding")
    embedding = events[phases.index("embedding")]
    assert progress_message(events[0]) == "finding the files to index"  # not "0/0 files"
    assert progress_message(embedding) == f"{embedding.files_done}/4 files read, embedding their chunks"
    assert progress_message(events[-1]) is None


def test_embedding_goes_in_steps_with_a_pause_between_and_rows_in_order(tmp_path: Path) -> None:
    from indexer.index import EMBED_STEP

    embedder = SpyEmbedder()
    index = new_index(tmp_path, tmp_path / "cache", embedder)
    pauses: list[int] = []
    index.between_steps = lambda: pauses.append(len(embedder.calls))
    texts = [f"def f{i}(x):\n" + "    return x\n" * (i % 7) for i in range(3 * EMBED_STEP + 3)]
    vectors = index._embed(texts)
    assert embedder.calls == [EMBED_STEP] * 3 + [3]
    assert pauses == [0, 1, 2, 3]  # before every step, none inside one
    assert np.array_equal(vectors, HashEmbedder(dim=128).embed(texts))  # the callers' order


def test_the_scan_pauses_every_scan_step_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import indexer.index as index_module

    monkeypatch.setattr(index_module, "SCAN_STEP", 3)
    repo = make_repo(tmp_path / "repo", {f"pkg/m{i:02d}.py": f"X{i} = {i}\n" for i in range(10)})
    embedder = SpyEmbedder()
    index = new_index(repo, tmp_path / "cache", embedder)
    pauses: list[int] = []
    index.between_steps = lambda: pauses.append(len(embedder.calls))
    index.build()
    # 3 in the scan of 10 files, then one before each step of 4 of their 10 chunks
    assert pauses == [0, 0, 0, 0, 1, 2]
    assert index.stats().files == 10


def test_the_model_loads_in_steps_with_a_pause_before_each(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    import indexer.embedder as embedder_module
    from indexer.embedder import SentenceTransformerEmbedder

    (tmp_path / "slm_step_one.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(embedder_module, "_force_offline", lambda: None)
    steps = ("slm_step_one", "slm_step_missing")
    monkeypatch.setattr(embedder_module, "LOAD_STEPS", steps)
    events: list[Any] = []
    real = SentenceTransformerEmbedder()
    monkeypatch.setattr(real, "_load", lambda: events.append("load") or object())
    real.load(pause=lambda: events.append([m for m in steps if m in sys.modules]))
    # one import between two pauses; a module missing ahead of the load is skipped
    # quietly (the load itself would report it)
    assert events == [[], ["slm_step_one"], ["slm_step_one"], "load"] and real.loaded
    real.load(pause=lambda: events.append("again"))
    assert events[-1] == "load"  # loaded once
    monkeypatch.delitem(sys.modules, "slm_step_one")


class LazySpy(SpyEmbedder):
    """A spy that must be loaded first, and records what it was given to pause with."""

    loaded = False

    def load(self, pause: Any = None) -> None:
        self.pause = pause
        self.loaded = True


def test_the_first_embedding_loads_the_model_with_the_index_pause(tmp_path: Path) -> None:
    embedder = LazySpy()
    index = new_index(tmp_path, tmp_path / "cache", embedder)
    index.between_steps = lambda: None
    index._embed(["def f(): pass"])
    assert embedder.loaded and embedder.pause is index.between_steps and embedder.calls == [1]


def test_a_build_pauses_between_steps_while_the_hook_blocks(repo: Path, tmp_path: Path) -> None:
    index = new_index(repo, tmp_path / "cache")
    gate = threading.Event()
    waits: list[float] = []
    index.between_steps = lambda: waits.append(float(gate.wait(5)))
    builder = threading.Thread(target=index.build)
    builder.start()
    builder.join(0.5)
    assert builder.is_alive() and index.stats().chunks == 0  # held before its first step
    gate.set()
    builder.join(30)
    assert not builder.is_alive() and index.stats().chunks > 0 and waits[0] == 1.0
