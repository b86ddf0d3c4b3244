"""Explanations by content hash, in memory and one JSON file per entry on disk."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class ExplainCache:
    """Explanations by content hash: an in-memory LRU over one JSON file per entry."""

    def __init__(self, directory: Path | None, size: int = 512) -> None:
        self.directory = directory
        self._memory: OrderedDict[str, str] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def _file(self, key: str) -> Path | None:
        return self.directory / key[:2] / f"{key}.json" if self.directory else None

    def get(self, key: str) -> str | None:
        """The cached text for ``key``, or None."""
        with self._lock:
            if key in self._memory:
                self._memory.move_to_end(key)
                return self._memory[key]
        file = self._file(key)
        if file is None:
            return None
        try:
            text = json.loads(file.read_text(encoding="utf-8"))["text"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        self._remember(key, str(text))
        return str(text)

    def put(self, key: str, text: str, meta: dict[str, Any] | None = None, *,
            persist: bool = True) -> None:
        """Remember ``text`` for ``key`` in memory and (if ``persist``) atomically on disk."""
        self._remember(key, text)
        file = self._file(key)
        if file is None or not persist:
            return
        try:
            file.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=".tmp-", suffix=".json")
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump({"text": text, "created": time.time(), **(meta or {})}, out)
            os.replace(tmp, file)
        except OSError as exc:
            log.warning("cannot write explanation cache %s: %s", file, exc)

    def _remember(self, key: str, text: str) -> None:
        with self._lock:
            self._memory[key] = text
            self._memory.move_to_end(key)
            while len(self._memory) > self._size:
                self._memory.popitem(last=False)


def content_key(*parts: str) -> str:
    """SHA-256 over the parts (what was explained, how, and by which model)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8", errors="surrogatepass"))
        digest.update(b"\0")
    return digest.hexdigest()
