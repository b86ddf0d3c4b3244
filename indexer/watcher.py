"""Watch a repository on disk and report changed and deleted files, debounced."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer

from indexer.walker import IGNORE_FILES, Walker

log = logging.getLogger(__name__)

ChangeCallback = Callable[[list[str], list[str]], None]

WATCHED_EVENTS: list[type[FileSystemEvent]] = [
    FileCreatedEvent, FileModifiedEvent, FileClosedEvent, FileDeletedEvent, FileMovedEvent,
    DirCreatedEvent, DirDeletedEvent, DirMovedEvent]
"""What the watcher asks the system for: writes, creations, deletions and moves. Not
opens and reads: the server itself reads the repository's files (a build, the symbol
lookup), and watchdog's threads spent 0.1-0.2 s of CPU each during every request of a
server building Django's index on those events, only for the handler to drop them."""
"""Called with (changed, deleted) root-relative `/` paths; deleted ones may be folders."""


class _Handler(FileSystemEventHandler):
    """Forwards watchdog events to the watcher."""

    def __init__(self, watcher: RepoWatcher) -> None:
        """A handler feeding `watcher`."""
        self.watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        """Record the paths an event touched."""
        src = os.fsdecode(event.src_path)
        if event.event_type == "deleted":
            self.watcher.note(src, deleted=True, is_dir=event.is_directory)
        elif event.event_type == "moved":
            self.watcher.note(src, deleted=True, is_dir=event.is_directory)
            self.watcher.note(os.fsdecode(event.dest_path), deleted=False,
                              is_dir=event.is_directory)
        elif not event.is_directory:
            self.watcher.note(src, deleted=False, is_dir=False)


class RepoWatcher:
    """Watches `root` recursively; after `debounce_ms` of quiet, calls `callback` once."""

    def __init__(self, root: str | os.PathLike[str], callback: ChangeCallback,
                 debounce_ms: int = 300, walker: Walker | None = None,
                 max_delay_ms: int = 3000) -> None:
        """A stopped watcher; paths are filtered through `walker`'s ignore and secret rules."""
        self.root = Path(root).resolve()
        self.callback = callback
        self.debounce = debounce_ms / 1000
        self.max_delay = max(max_delay_ms, debounce_ms) / 1000
        self.walker = walker or Walker(self.root)
        self._changed: set[str] = set()
        self._deleted: set[str] = set()
        self._cond = threading.Condition()
        self._observer: Observer | None = None  # type: ignore[valid-type]
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._last_event = 0.0

    def start(self) -> None:
        """Start watching (idempotent)."""
        if self._observer is not None:
            return
        self._stopping = False
        observer = Observer()
        observer.schedule(_Handler(self), str(self.root), recursive=True,
                          event_filter=WATCHED_EVENTS)
        observer.daemon = True
        observer.start()
        self._observer = observer
        self._thread = threading.Thread(target=self._loop, name="index-watcher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop watching; pending changes are delivered first."""
        observer, self._observer = self._observer, None
        if observer is None:
            return
        observer.stop()
        observer.join(timeout)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> RepoWatcher:
        """Start on entering a `with` block."""
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop on leaving a `with` block."""
        self.stop()

    def note(self, path: str, deleted: bool, is_dir: bool) -> None:
        """Record one changed or deleted path, if the index may hold it."""
        rel = self.walker.relative(path)
        if rel is None:
            return
        if PurePosixPath(rel).name in IGNORE_FILES:  # not indexed, but the rules changed
            self._add(rel, deleted=False)
        elif deleted:
            if not self.walker.rules.ignored(rel, is_dir):
                self._add(rel, deleted=True)
        elif self.walker.accepts(rel):
            self._add(rel, deleted=False)

    def _add(self, rel: str, deleted: bool) -> None:
        """Queue a path and wake the debounce loop."""
        with self._cond:
            if deleted:
                self._changed.discard(rel)
                self._deleted.add(rel)
            else:
                self._deleted.discard(rel)
                self._changed.add(rel)
            self._last_event = time.monotonic()
            self._cond.notify_all()

    def _loop(self) -> None:
        """Wait for a quiet period (or the maximum delay), then deliver the batch."""
        while True:
            with self._cond:
                while not (self._changed or self._deleted or self._stopping):
                    self._cond.wait()
                if not (self._changed or self._deleted):
                    return
                batch = self._wait_quiet()
            self._deliver(*batch)

    def _wait_quiet(self) -> tuple[list[str], list[str]]:
        """Under the condition: wait until no event came for `debounce`, then take the batch."""
        first = time.monotonic()
        while not self._stopping:
            now = time.monotonic()
            quiet_at = self._last_event + self.debounce
            if now >= quiet_at or now - first >= self.max_delay:
                break
            self._cond.wait(min(quiet_at, first + self.max_delay) - now)
        batch = (sorted(self._changed), sorted(self._deleted))
        self._changed.clear()
        self._deleted.clear()
        return batch

    def _deliver(self, changed: list[str], deleted: list[str]) -> None:
        """Call the callback, logging (not raising) its errors."""
        try:
            self.callback(changed, deleted)
        except Exception:  # noqa: BLE001 - keep watching after a failed update
            log.exception("index update after file changes failed")
