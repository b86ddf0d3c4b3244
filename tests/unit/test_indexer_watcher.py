"""The watcher reports files written and deleted on disk, filtered and debounced."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from indexer.embedder import HashEmbedder
from indexer.index import RepoIndex
from indexer.watcher import RepoWatcher


class Collector:
    """Callback that records batches and signals each one."""

    def __init__(self) -> None:
        self.batches: list[tuple[list[str], list[str]]] = []
        self.event = threading.Event()

    def __call__(self, changed: list[str], deleted: list[str]) -> None:
        self.batches.append((changed, deleted))
        self.event.set()

    def wait(self, timeout: float = 10.0) -> tuple[list[str], list[str]]:
        """The next batch (fails the test after `timeout` seconds)."""
        assert self.event.wait(timeout), "watcher reported nothing"
        self.event.clear()
        return self.batches[-1]


def test_written_and_deleted_files_are_reported(tmp_path: Path) -> None:
    (tmp_path / ".gitignore").write_text("*.tmp\n")
    (tmp_path / "old.py").write_text("x = 1\n")
    collector = Collector()
    with RepoWatcher(tmp_path, collector, debounce_ms=100):
        time.sleep(0.2)
        (tmp_path / "pkg").mkdir()
        (tmp_path / "pkg" / "new.py").write_text("def new():\n    pass\n")
        (tmp_path / "scratch.tmp").write_text("ignored\n")
        (tmp_path / ".env").write_text("SECRET=1\n")
        changed, deleted = collector.wait()
        assert changed == ["pkg/new.py"] and deleted == []
        (tmp_path / "old.py").unlink()
        changed, deleted = collector.wait()
        assert deleted == ["old.py"]


def test_burst_of_writes_is_one_batch(tmp_path: Path) -> None:
    collector = Collector()
    with RepoWatcher(tmp_path, collector, debounce_ms=300):
        time.sleep(0.2)
        for i in range(5):
            (tmp_path / f"m{i}.py").write_text(f"x = {i}\n")
            time.sleep(0.02)
        changed, _ = collector.wait()
        time.sleep(0.5)
    assert changed == [f"m{i}.py" for i in range(5)]
    assert len(collector.batches) == 1


def test_watcher_keeps_index_current(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("def alpha():\n    return 1\n")
    index = RepoIndex(tmp_path, tmp_path.parent / f"{tmp_path.name}-cache",
                      embedder=HashEmbedder())
    index.build()
    done = threading.Event()

    def apply(changed: list[str], deleted: list[str]) -> None:
        index.apply_changes(changed, deleted)
        done.set()

    with RepoWatcher(tmp_path, apply, debounce_ms=100):
        time.sleep(0.2)
        (tmp_path / "b.py").write_text("def compute_checksum(data):\n    return sum(data)\n")
        assert done.wait(10)
    assert "b.py" in index.files()
    assert index.search("compute checksum", k=1)[0].chunk.symbol == "compute_checksum"


def test_new_ignore_rule_prunes_indexed_files(tmp_path: Path) -> None:
    (tmp_path / "keep.py").write_text("def keep():\n    return 1\n")
    (tmp_path / "gen").mkdir()
    (tmp_path / "gen" / "out.py").write_text("def generated():\n    return 2\n")
    index = RepoIndex(tmp_path, tmp_path.parent / f"{tmp_path.name}-cache",
                      embedder=HashEmbedder())
    index.build()
    collector = Collector()
    with RepoWatcher(tmp_path, collector, debounce_ms=100):
        time.sleep(0.2)
        (tmp_path / ".gitignore").write_text("gen/\n")
        changed, deleted = collector.wait()
    assert changed == [".gitignore"]
    index.apply_changes(changed, deleted)
    assert index.files() == ["keep.py"]


def test_reading_files_raises_no_events(tmp_path: Path, monkeypatch) -> None:
    from indexer import watcher as watcher_module

    seen: list[str] = []
    original = watcher_module._Handler.on_any_event

    def spy(self, event) -> None:  # type: ignore[no-untyped-def]
        seen.append(event.event_type)
        original(self, event)

    monkeypatch.setattr(watcher_module._Handler, "on_any_event", spy)
    (tmp_path / "read.py").write_text("x = 1\n")
    collector = Collector()
    with RepoWatcher(tmp_path, collector, debounce_ms=100):
        time.sleep(0.2)
        for _ in range(50):  # what a build or the symbol lookup does
            (tmp_path / "read.py").read_text()
        time.sleep(0.5)
        assert seen == [] and collector.batches == []
        (tmp_path / "read.py").write_text("x = 2\n")
        assert collector.wait() == (["read.py"], [])
    assert "opened" not in seen and "closed_no_write" not in seen and "modified" in seen
