"""The store of saved KV states (no model needed: states are opaque bytes here)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from slm_lsp.backends.snapshots import SnapshotStore


def test_the_least_recently_used_state_is_dropped_with_its_file(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path, capacity=2)
    assert store.save([1, 2, 3], 1, b"a") and store.save([4, 5], None, b"b")
    first = next(s for s in store._saved.values() if s.tokens == (1, 2, 3))
    assert store.read(first) == b"a"  # used: now the most recent
    assert store.save([6], 0, b"c")
    assert sorted(s.tokens for s in store._saved.values()) == [(1, 2, 3), (6,)]
    assert len(list(store.folder.glob("*.kv"))) == 2


def test_saving_the_same_tokens_twice_keeps_one_file(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path, capacity=4)
    store.save([1, 2], 1, b"x")
    store.save([1, 2], 1, b"x")
    assert len(store) == 1 and len(list(store.folder.glob("*.kv"))) == 1


def test_best_is_the_highest_score(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path, capacity=4)
    assert store.best(lambda s: 0) is None
    for tokens in ([1], [1, 2, 3], [1, 2]):
        store.save(tokens, None, bytes(tokens))
    found = store.best(lambda s: len(s.tokens))
    assert found is not None and found[0].tokens == (1, 2, 3) and found[1] == 3


def test_a_vanished_file_is_forgotten(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path, capacity=4)
    store.save([7], None, b"z")
    snap = next(iter(store._saved.values()))
    snap.path.unlink()
    assert store.read(snap) is None and len(store) == 0


def test_a_refused_write_keeps_nothing(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path, capacity=4)
    store.folder.rmdir()
    store.folder.write_text("not a folder")
    assert not store.save([1], None, b"x") and len(store) == 0


def test_close_deletes_the_folder_and_a_new_store_sweeps_dead_processes(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path, capacity=4)
    store.save([1], None, b"x")
    store.close()
    assert not store.folder.exists()
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead = tmp_path / done.stdout.strip()  # that process has exited
    (dead / "old.kv").parent.mkdir()
    (dead / "old.kv").write_bytes(b"x")
    alive = tmp_path / str(os.getppid())
    alive.mkdir()
    SnapshotStore(tmp_path, capacity=1)
    assert not dead.exists() and alive.exists()
