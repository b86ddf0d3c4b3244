"""Saved KV-cache states of earlier prompts, so that going back to a place is fast.

Evaluating a completion prompt from nothing takes 10-14 s on two cores (about
1,800 tokens); its KV state is about 20 MiB with the default model and llama.cpp
saves or restores it in milliseconds. When the cursor jumps far away, the cache
is about to be overwritten: its state is written to a file first, and when a
later prompt shares more with a saved state than with the cache, that state is
read back and the usual block reuse (``KVCache.sync``) starts from it.

The files live in a private folder under the cache root, one per server process,
and are deleted when the model is closed; folders left behind by processes that
no longer run are removed when a new store starts.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import os
import shutil
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    """One saved state: the tokens its cells hold (``KVCache.HOLE`` where none) and
    the position of its cursor marker. Its file is named by its key in the store."""

    tokens: tuple[int, ...]
    mark: int | None
    path: Path


def _remove(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


class SnapshotStore:
    """At most ``capacity`` saved states, the least recently used dropped first."""

    def __init__(self, root: Path, capacity: int) -> None:
        self.capacity = capacity
        self.folder = root / str(os.getpid())
        self._saved: OrderedDict[str, Snapshot] = OrderedDict()
        self._sweep(root)
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        atexit.register(self.close)  # also when the model is never closed

    @staticmethod
    def _sweep(root: Path) -> None:
        """Remove the folders of server processes that are gone."""
        try:
            entries = list(root.iterdir())
        except OSError:
            return
        for entry in entries:
            if entry.name.isdigit() and int(entry.name) != os.getpid() and not _alive(int(entry.name)):
                shutil.rmtree(entry, ignore_errors=True)

    @staticmethod
    def _key(tokens: Sequence[int]) -> str:
        return hashlib.blake2b(repr(tuple(tokens)).encode(), digest_size=12).hexdigest()

    def __len__(self) -> int:
        return len(self._saved)

    def save(self, tokens: Sequence[int], mark: int | None,
             data: bytes | bytearray | memoryview) -> bool:
        """Keep ``data``, the state of a cache holding ``tokens``; False when the disk
        refused it (nothing is kept then)."""
        key = self._key(tokens)
        if key in self._saved:
            self._saved.move_to_end(key)
            return True
        path = self.folder / f"{key}.kv"
        try:
            with path.open("wb") as f:
                f.write(data)
        except OSError as exc:
            log.warning("could not save a KV snapshot in %s: %s", self.folder, exc)
            _remove(path)
            return False
        self._saved[key] = Snapshot(tuple(tokens), mark, path)
        while len(self._saved) > self.capacity:
            _, dropped = self._saved.popitem(last=False)
            _remove(dropped.path)
        return True

    def best(self, score: Callable[[Snapshot], int]) -> tuple[Snapshot, int] | None:
        """The saved state with the highest ``score`` (tokens it would let a prompt
        reuse), with that score; None when nothing is saved."""
        scored = [(score(snap), snap) for snap in self._saved.values()]
        if not scored:
            return None
        value, snap = max(scored, key=lambda pair: pair[0])
        return snap, value

    def read(self, snap: Snapshot) -> bytearray | None:
        """The saved state's bytes, None when its file is gone or unreadable (it is
        forgotten then)."""
        try:
            with snap.path.open("rb") as f:
                data = bytearray(os.fstat(f.fileno()).st_size)
                f.readinto(data)
        except OSError as exc:
            log.warning("could not read a KV snapshot: %s", exc)
            self._saved.pop(snap.path.stem, None)
            return None
        self._saved.move_to_end(snap.path.stem)
        return data

    def close(self) -> None:
        """Delete every saved state and the folder."""
        self._saved.clear()
        shutil.rmtree(self.folder, ignore_errors=True)
        atexit.unregister(self.close)
