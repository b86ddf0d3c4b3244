"""In-process GGUF backend on llama.cpp (llama-cpp-python's low-level API).

We drive llama.cpp ourselves instead of ``Llama.create_completion`` for three
reasons: cancellation must stop decoding at the next token, the KV cache must
be reused across requests in ways the high-level class does not do (see
``KVCache.sync``), and nothing may ever write to stdout (the protocol channel):
the high-level class redirects file descriptors while loading, which would
race with the server writing responses.
"""

from __future__ import annotations

import ctypes
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from prompts.fim import FimFamily, Segment, detect_family

from ..paths import cache_root
from .base import BackendError, Cancelled, Generation, StopRule
from .snapshots import Snapshot, SnapshotStore

log = logging.getLogger(__name__)

_backend_ready = False
_backend_lock = threading.Lock()


def _init_llama() -> object:
    """Import llama_cpp once, with its C logging routed to stderr at error level."""
    global _backend_ready
    try:
        import llama_cpp
        from llama_cpp import _logger
    except ImportError as exc:  # pragma: no cover - a broken install
        raise BackendError(f"llama-cpp-python is not installed: {exc}") from exc
    with _backend_lock:
        if not _backend_ready:
            _logger.set_verbose(log.isEnabledFor(logging.DEBUG))
            llama_cpp.llama_backend_init()
            _backend_ready = True
    return llama_cpp


def default_threads() -> int:
    """Physical cores are what matters for llama.cpp; we assume no SMT siblings."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def system_info() -> str:
    """llama.cpp's build and CPU feature line."""
    llama_cpp = _init_llama()
    return bytes(llama_cpp.llama_print_system_info()).decode(errors="replace").strip()  # type: ignore[attr-defined]


def read_gguf_header(path: Path) -> None:
    """Refuse anything that is not a GGUF file before llama.cpp sees it."""
    try:
        with path.open("rb") as f:
            magic = f.read(4)
    except OSError as exc:
        raise BackendError(f"cannot read model file {path}: {exc}") from exc
    if magic != b"GGUF":
        raise BackendError(f"{path} is not a GGUF model file (bad magic {magic!r})")


_LAST_WORD = re.compile(r"(?: ?[A-Za-z0-9_]+| |[^ ])\Z")


def heal_split(forced: str) -> tuple[str, str]:
    """``forced`` cut into the text that goes into the prompt and the piece that
    constrains the first generated token.

    Only the last word (with the space before it), or the last blank, is left to
    the model: it picks the token that starts with it, which is what token
    healing is for. The text before it is tokenized the way the model would
    have tokenized it and evaluated with the prompt. Forcing every byte through
    per-step constrained picks instead lets the model choose splits it never
    saw in training (an indentation as three spaces and then single ones),
    after which it can generate nothing but blanks; it also costs one decoding
    step per forced token.
    """
    match = _LAST_WORD.search(forced)
    if match is None:
        return forced, ""
    return forced[:match.start()], match.group(0)


PROMPT_DRAFT = 4
"""Most tokens drafted from the prompt (drafts from the previous suggestion get more)."""


class LlamaBackend:
    """A GGUF model in this process, one generation at a time."""

    def __init__(
        self,
        path: str | Path,
        *,
        n_ctx: int = 4096,
        n_batch: int = 512,
        n_threads: int = 0,
        splice: bool = True,
        shared: LlamaBackend | None = None,
        snapshots: int = 0,
    ) -> None:
        """``snapshots``: how many earlier prompts' states to keep on disk for when the
        cursor comes back (see ``slm_lsp.backends.snapshots``); 0 keeps none."""
        self.path = Path(path)
        read_gguf_header(self.path)
        self._c = _init_llama()
        from llama_cpp import _internals

        c = self._c
        self._model: Any
        self._owners: list[int]
        if shared is not None:
            self._model = shared._model
            self._owners = shared._owners
        else:
            mparams = c.llama_model_default_params()  # type: ignore[attr-defined]
            mparams.n_gpu_layers = 0
            try:
                self._model = _internals.LlamaModel(
                    path_model=str(self.path), params=mparams, verbose=True
                )
            except (ValueError, RuntimeError) as exc:
                raise BackendError(f"llama.cpp could not load {self.path}: {exc}") from exc
            self._owners = [0]
        self._owners[0] += 1
        threads = n_threads or default_threads()
        cparams = c.llama_context_default_params()  # type: ignore[attr-defined]
        cparams.n_ctx = n_ctx
        cparams.n_batch = n_batch
        cparams.n_ubatch = n_batch
        cparams.n_threads = threads
        cparams.n_threads_batch = threads
        cparams.n_seq_max = 2  # seq 1 is scratch space for splicing (see KVCache)
        cparams.kv_unified = True
        cparams.no_perf = True
        try:
            self._ctx = _internals.LlamaContext(model=self._model, params=cparams, verbose=True)
        except (ValueError, RuntimeError) as exc:
            self._release_model()
            raise BackendError(f"llama.cpp could not create a context: {exc}") from exc
        self.n_ctx = n_ctx
        self.n_batch = n_batch
        self.threads = threads
        self._vocab = self._model.vocab
        self._n_vocab = self._model.n_vocab()
        self._batch = _internals.LlamaBatch(n_tokens=n_batch, embd=0, n_seq_max=2, verbose=True)
        self._lock = threading.Lock()
        self._special_ids: dict[str, int | None] = {}
        self.metadata: dict[str, str] = self._model.metadata()
        mem = c.llama_get_memory(self._ctx.ctx)  # type: ignore[attr-defined]
        can_shift = bool(mem is not None and c.llama_memory_can_shift(mem))  # type: ignore[attr-defined]
        store = None
        if snapshots > 0:
            try:
                store = SnapshotStore(cache_root() / "kv", snapshots)
            except OSError as exc:
                log.warning("KV snapshots are off: %s", exc)
        self.kv = KVCache(self, splice=splice and can_shift, snapshots=store)
        self._fim = detect_family(self._special_id, self._fim_metadata())
        log.info("loaded %s (%d threads, ctx %d, fim %s, splice %s, snapshots %d)", self.path.name,
                 threads, n_ctx, self._fim.name if self._fim else None, self.kv.splice,
                 store.capacity if store is not None else 0)

    # -- vocabulary -----------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def fim(self) -> FimFamily | None:
        return self._fim

    @property
    def chat_template(self) -> str | None:
        return self.metadata.get("tokenizer.chat_template")

    def _fim_metadata(self) -> dict[str, int]:
        c = self._c
        v = self._vocab
        return {
            "fim_pre": int(c.llama_vocab_fim_pre(v)),  # type: ignore[attr-defined]
            "fim_suf": int(c.llama_vocab_fim_suf(v)),  # type: ignore[attr-defined]
            "fim_mid": int(c.llama_vocab_fim_mid(v)),  # type: ignore[attr-defined]
        }

    def _special_id(self, text: str) -> int | None:
        """The id of ``text`` when it is one special token of this model (memoized:
        every prompt asks for the same few)."""
        if text not in self._special_ids:
            self._special_ids[text] = self._lookup_special(text)
        return self._special_ids[text]

    def _lookup_special(self, text: str) -> int | None:
        ids = self._model.tokenize(text.encode(), False, True)
        if len(ids) != 1:
            return None
        tok = ids[0]
        c = self._c
        is_special = c.llama_vocab_is_control(self._vocab, tok) or (  # type: ignore[attr-defined]
            self._model.token_get_text(tok) == text and text.startswith(("<", "[", "▁<"))
        )
        return tok if is_special else None

    def tokenize(self, text: str) -> list[int]:
        """Plain text to tokens; special-token text stays plain text."""
        if not text:
            return []
        return list(self._model.tokenize(text.encode("utf-8"), False, False))

    def count_tokens(self, text: str) -> int:
        return len(self.tokenize(text))

    def encode(self, prompt: Sequence[Segment]) -> list[int]:
        """Segments to token ids, with a BOS token first when the model wants one."""
        tokens: list[int] = []
        if self._c.llama_vocab_get_add_bos(self._vocab):  # type: ignore[attr-defined]
            tokens.append(int(self._c.llama_vocab_bos(self._vocab)))  # type: ignore[attr-defined]
        for seg in prompt:
            if seg.special:
                tok = self._special_id(seg.text)
                if tok is None:
                    raise BackendError(f"{self.name} has no special token {seg.text!r}")
                tokens.append(tok)
            else:
                tokens.extend(self.tokenize(seg.text))
        return tokens

    def piece(self, token: int) -> bytes:
        """The bytes of one token (special tokens render as nothing)."""
        size = 64
        while True:
            buf = ctypes.create_string_buffer(size)
            n = self._c.llama_token_to_piece(self._vocab, token, buf, size, 0, False)  # type: ignore[attr-defined]
            if n >= 0:
                return buf.raw[:n]
            size = -n

    def text_of(self, tokens: Sequence[int]) -> bytes:
        """The bytes of ``tokens`` (cells the cache lacks, ``KVCache.HOLE``, count as none)."""
        table = self._pieces()
        return b"".join(table[t] for t in tokens if t >= 0)

    def is_end(self, token: int) -> bool:
        """End-of-generation or any control token: generation stops there."""
        c = self._c
        return bool(c.llama_vocab_is_eog(self._vocab, token)  # type: ignore[attr-defined]
                    or c.llama_vocab_is_control(self._vocab, token))  # type: ignore[attr-defined]

    # -- decoding -------------------------------------------------------------------

    def decode(self, tokens: Sequence[int], start: int, seq: int = 0, all_logits: bool = False) -> None:
        """Evaluate ``tokens`` at positions ``start``.. in sequence ``seq``."""
        b = self._batch.batch
        b.n_tokens = len(tokens)
        for i, tok in enumerate(tokens):
            b.token[i] = tok
            b.pos[i] = start + i
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = seq
            b.logits[i] = all_logits
        b.logits[len(tokens) - 1] = True
        self._ctx.decode(self._batch)

    def argmax(self, row: int = -1) -> int:
        """Greedy pick from the logits of an output row of the last batch (-1: the last)."""
        ptr = self._ctx.get_logits_ith(row)
        logits = np.ctypeslib.as_array(ptr, shape=(self._n_vocab,))
        return int(np.argmax(logits))

    def memory(self) -> object:
        return self._c.llama_get_memory(self._ctx.ctx)  # type: ignore[attr-defined]

    def generate(
        self,
        prompt: Sequence[Segment],
        *,
        max_tokens: int,
        stop: StopRule | None = None,
        cancel: threading.Event | None = None,
        forced: str = "",
    ) -> Generation:
        head, forced = heal_split(forced)
        tokens = self.encode(prompt)
        if not tokens:
            raise BackendError("empty prompt")
        tokens += self.tokenize(head)
        if len(tokens) + max_tokens > self.n_ctx:
            raise BackendError(
                f"prompt of {len(tokens)} tokens plus {max_tokens} to generate exceeds the "
                f"context of {self.n_ctx}; lower the prefix/suffix budgets or raise contextSize"
            )
        with self._lock:
            return self._generate(tokens, max_tokens, stop, cancel, forced)

    @property
    def can_warm(self) -> bool:
        """Whether ``warm`` can keep what it evaluates (KV snapshots are on)."""
        return self.kv.snapshots is not None

    def warm(self, prompt: Sequence[Segment], cancel: threading.Event | None = None) -> int:
        """Evaluate ``prompt`` (an open-ended completion prompt, see ``build_fim_prompt``)
        and save its KV state, so that later prompts for cursors nearby read it back
        instead of evaluating it. Only the common prefix with the cache is reused here
        (no moved blocks): a saved state is exact. Returns how many tokens were
        evaluated: 0 when the cache or a saved state already held it. Raises
        ``Cancelled``."""
        if self.kv.snapshots is None:
            raise BackendError("region warm-ups need KV snapshots (slm.model.kvSnapshots > 0)")
        tokens = self.encode(prompt)
        if len(tokens) >= self.n_ctx:
            raise BackendError(f"a warm-up prompt of {len(tokens)} tokens does not fit the "
                               f"context of {self.n_ctx}")
        mark = self._cursor_mark(tokens)
        with self._lock:
            if self.kv.covered(tokens, mark):
                return 0
            # The cache usually holds the prompt at the cursor (the last request or the
            # cursor's own warm-up): keep it for the next keystroke there.
            if self.kv.worth_saving():
                self.kv.keep()
            self.kv.step = self.kv.WARM_STEP
            splice, store = self.kv.splice, self.kv.snapshots
            self.kv.splice, self.kv.snapshots = False, None  # exact states only
            try:
                reused = self.kv.sync(tokens, cancel, mark)
            finally:
                self.kv.step = self.kv.CANCEL_STEP
                self.kv.splice, self.kv.snapshots = splice, store
            self.kv.keep()
            return len(tokens) - reused

    def _pieces(self) -> PieceTable:
        """Every token's bytes, computed once (for constrained first tokens)."""
        if self._piece_table is None:
            self._piece_table = PieceTable(self.piece(t) for t in range(self._n_vocab))
        return self._piece_table

    _piece_table: PieceTable | None = None

    def pick(self, need: bytes, row: int = -1) -> int:
        """The most likely token consistent with the bytes that must come next.

        Used for token healing: the prompt ends before a partly typed word and
        the output must begin with that word's characters.
        """
        if not need:
            return self.argmax(row)
        pieces = self._pieces()
        logits = np.ctypeslib.as_array(self._ctx.get_logits_ith(row), shape=(self._n_vocab,))
        top = np.argpartition(logits, -256)[-256:]
        for tok in top[np.argsort(logits[top])[::-1]]:
            p = pieces[int(tok)]
            if p and (p.startswith(need) or need.startswith(p)) and not self.is_end(int(tok)):
                return int(tok)
        best, best_logit = -1, -np.inf  # rare: nothing fitting among the top; scan all
        for tok, p in enumerate(pieces):
            if p and need.startswith(p) and logits[tok] > best_logit and not self.is_end(tok):
                best, best_logit = tok, logits[tok]
        if best < 0:
            raise BackendError(f"no token can start with {need!r}")
        return best

    def _generate(
        self,
        tokens: list[int],
        max_tokens: int,
        stop: StopRule | None,
        cancel: threading.Event | None,
        forced: str,
    ) -> Generation:
        t0 = time.perf_counter()
        need = forced.encode("utf-8")
        reused = self.kv.sync(tokens, cancel, self._cursor_mark(tokens), need)
        t1 = time.perf_counter()
        run = _Run(self, need, stop, max_tokens)
        history = list(tokens)
        pos = len(tokens)
        logit_i = -1  # which output row of the last batch predicts the next token
        drafted = accepted = 0
        try:
            while run.reason is None:
                pending = run.pending()
                tok = self.pick(pending, logit_i) if pending else self.argmax(logit_i)
                if not run.accept(tok):
                    break
                history.append(tok)
                if cancel is not None and cancel.is_set():
                    raise Cancelled()
                draft = [] if run.pending() or not self.draft_tokens else \
                    self._draft(history, self.draft_tokens)
                self.decode([tok, *draft], pos, all_logits=bool(draft))
                pos += 1
                logit_i = 0 if draft else -1
                drafted += len(draft)
                for j, guess in enumerate(draft):  # keep the draft as far as greedy agrees
                    if self.argmax(j) != guess or not run.accept(guess):
                        break
                    history.append(guess)
                    accepted += 1
                    pos += 1
                    logit_i = j + 1
                if draft:
                    self.kv.drop_from(pos)  # rejected draft tokens
        finally:
            self.kv.forget_after(len(tokens))
            self.previous_tokens = history[len(tokens):]
        t2 = time.perf_counter()
        return Generation(
            text=run.text, n_prompt=len(tokens), n_reused=reused, n_generated=run.n,
            prompt_ms=(t1 - t0) * 1000, generate_ms=(t2 - t1) * 1000,
            stop_reason=run.reason or "length",
            timings={"drafted": drafted, "accepted": accepted},
        )

    def _cursor_mark(self, tokens: list[int]) -> int | None:
        """Position of the FIM marker between the two sides of the cursor (the later
        of the prefix and suffix tokens), or None in a prompt without one."""
        if self._fim is None:
            return None
        ids = {self._special_id(self._fim.prefix), self._special_id(self._fim.suffix)} - {None}
        for pos in range(len(tokens) - 1, -1, -1):
            if tokens[pos] in ids:
                return pos
        return None

    draft_tokens = 8
    """Most tokens proposed per step by prompt-lookup decoding (0 turns it off)."""
    prompt_draft_tokens = PROMPT_DRAFT
    """Most of them taken from the prompt (see ``lookup_draft``)."""
    prompt_draft_keys: tuple[int, ...] = (3,)
    previous_tokens: list[int] = []
    """The last generation's tokens, which drafts are taken from first."""

    def _draft(self, history: list[int], limit: int) -> list[int]:
        """Tokens likely to come next (see ``lookup_draft``)."""
        return lookup_draft(history, self.previous_tokens, limit, min(limit, self.prompt_draft_tokens),
                            self.prompt_draft_keys)

    def spawn(self, n_ctx: int | None = None) -> LlamaBackend:
        """Another context (own KV cache, own lock) on the same loaded weights.

        Explanations use one so that they neither evict the completion prompt
        from the KV cache nor load the model twice.
        """
        return LlamaBackend(self.path, n_ctx=n_ctx or self.n_ctx, n_batch=self.n_batch,
                            n_threads=self.threads, splice=self.kv.splice, shared=self)

    def _release_model(self) -> None:
        self._owners[0] -= 1
        if self._owners[0] <= 0:
            self._model.close()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self.kv.snapshots is not None:
                self.kv.snapshots.close()
            self._batch.close()  # type: ignore[no-untyped-call]
            self._ctx.close()  # type: ignore[no-untyped-call]
            self._release_model()

    _closed = False


class PieceTable:
    """Token bytes by token id, packed in one buffer: a list of 150,000 small bytes
    objects (the default model's vocabulary) holds 8 MiB, this about 2 MiB."""

    def __init__(self, pieces: Iterable[bytes]) -> None:
        blob = bytearray()
        ends: list[int] = []
        for piece in pieces:
            blob += piece
            ends.append(len(blob))
        self._blob = bytes(blob)
        self._ends = np.array(ends, dtype=np.int64)

    def __len__(self) -> int:
        return len(self._ends)

    def __getitem__(self, token: int) -> bytes:
        if not 0 <= token < len(self._ends):
            raise IndexError(token)
        start = int(self._ends[token - 1]) if token else 0
        return self._blob[start:int(self._ends[token])]

    def __iter__(self) -> Iterator[bytes]:
        return (self[token] for token in range(len(self._ends)))


class _Run:
    """Bookkeeping of one generation: text so far, forced start, stop decisions."""

    def __init__(self, backend: LlamaBackend, need: bytes, stop: StopRule | None,
                 max_tokens: int) -> None:
        self.b = backend
        self.need = need
        self.stop = stop
        self.limit = max_tokens + len(need)
        self.out = bytearray()
        self.text = ""
        self.n = 0
        self.reason: str | None = None

    def pending(self) -> bytes:
        """Forced bytes not generated yet (token healing)."""
        return self.need[len(self.out):] if len(self.out) < len(self.need) else b""

    def accept(self, tok: int) -> bool:
        """Add a token; False when generation must end here (the token is not added
        for an end token, and the text is cut where a stop rule says)."""
        if self.b.is_end(tok):
            self.reason = "eog"
            return False
        self.out += self.b.piece(tok)
        self.n += 1
        if len(self.out) >= len(self.need):
            self.text = self.out[len(self.need):].decode("utf-8", errors="ignore")
            cut = self.stop(self.text) if self.stop else None
            if cut is not None:
                self.text = self.text[:cut]
                self.reason = "stop"
                return False
        if self.n >= self.limit:
            self.reason = "length"
            return False
        return True


class KVCache:
    """Which tokens sit in the model's KV cache (sequence 0, positions 0..n-1).

    ``sync`` makes the cache hold a new prompt while evaluating as little as
    possible. The common prefix is always kept. With ``splice`` on, any long run
    of tokens that the cache already holds is kept as well, wherever it now
    sits: the new prompt is aligned with the cached one (``plan``), the cells of
    each matching block are moved to their new positions with a RoPE position
    shift (``llama_memory_seq_add``), and only the tokens in between are
    evaluated. Typing before the suffix, moving the cursor to another line (the
    text between the old and the new cursor changes sides of the FIM suffix
    token) and a window that slides by a few lines all become cheap this way.

    llama.cpp only appends at the end of a sequence, so a gap that has kept
    blocks after it is evaluated in scratch sequence 1, which first receives
    the cells before the gap, and is then added to sequence 0. A moved block
    keeps the attention state it had when it was computed, except a short
    window at its start that is recomputed (``REFRESH``); the benchmark measures
    what the rest costs in accuracy.

    ``tokens`` may hold ``HOLE`` where no cell exists (a cancelled evaluation
    leaves the blocks after it in place, and the next ``sync`` can still use them).
    """

    MIN_SPLICE = 32
    """Shortest block worth moving rather than evaluating again."""
    REFRESH = 8
    """Tokens at the start of a moved block that are recomputed anyway: the cached
    states there still encode the text that came before them, and without this
    the model tends to predict the characters the user just typed (measured: the
    next token agreed with a full evaluation 1 time in 8 without, 8 in 8 with 4)."""
    HOLE = -1
    CANCEL_STEP = 128
    """Prompt tokens per decode call: how often a cancelled prompt evaluation looks up."""
    WARM_STEP = 64
    """The same for a warm-up, which a user's request interrupts: it waits for at
    most this many tokens (about 0.5 s; bench_decode's prompt evaluation shows 32
    would make a warm-up about 14% slower)."""

    def __init__(self, backend: LlamaBackend, *, splice: bool,
                 snapshots: SnapshotStore | None = None) -> None:
        self.b = backend
        self.splice = splice
        self.snapshots = snapshots
        self.tokens: list[int] = []
        self.mark: int | None = None
        self.step = self.CANCEL_STEP

    def _rm(self, seq: int, p0: int, p1: int) -> None:
        self.b._c.llama_memory_seq_rm(self.b.memory(), seq, p0, p1)  # type: ignore[attr-defined]

    def _eval(self, tokens: Sequence[int], start: int, seq: int,
              cancel: threading.Event | None, done: list[int] | None = None) -> None:
        step = min(self.b.n_batch, self.step)
        for i in range(0, len(tokens), step):
            if cancel is not None and cancel.is_set():
                raise Cancelled()
            self.b.decode(tokens[i:i + step], start + i, seq)
            if done is not None:
                done[0] = i + len(tokens[i:i + step])

    def drop_from(self, pos: int) -> None:
        """Remove cells from ``pos`` on (rejected draft tokens; not tracked in ``tokens``)."""
        self._rm(0, pos, -1)

    def forget_after(self, n: int) -> None:
        """Drop generated tokens so the cache ends with the prompt again."""
        self._rm(0, n, -1)  # generated tokens are never recorded in ``tokens``
        del self.tokens[n:]

    def clear(self) -> None:
        self._rm(-1, -1, -1)
        self.tokens = []
        self.mark = None

    WINDOW = 32
    """Tokens on each side of the cursor marker recomputed after the cursor moved
    over cached text (see ``plan``)."""

    def sync(self, prompt: list[int], cancel: threading.Event | None = None,
             mark: int | None = None, forced: bytes = b"") -> int:
        """Make the cache hold ``prompt`` with fresh logits for its last token.

        ``mark`` is where the cursor marker sits in ``prompt`` (see ``plan``);
        ``forced`` is the text the generation must start with (token healing),
        which is typed text all the same (see ``deleted_before_cursor``).
        Returns how many prompt tokens were reused rather than evaluated.
        """
        n, blocks = self._layout(self.tokens, self.mark, prompt, mark, forced)
        if self.snapshots is not None and len(prompt) - _reused(n, blocks) >= self.SNAPSHOT_GAIN:
            if self._jump(prompt, mark, _reused(n, blocks), forced):
                n, blocks = self._layout(self.tokens, self.mark, prompt, mark, forced)
        self.mark = mark
        cached = self.tokens
        if blocks:
            return self._rebuild(prompt, n, blocks, cancel)
        self._rm(0, n, -1)
        self.tokens = cached[:n]
        done = [0]
        try:
            self._eval(prompt[n:], n, 0, cancel, done)
        except Cancelled:
            # Keep what was evaluated: the next prompt usually starts the same way.
            self.tokens = list(prompt[:n + done[0]])
            raise
        self.tokens = list(prompt)
        return n

    def _layout(self, cached: Sequence[int], cached_mark: int | None, prompt: list[int],
                mark: int | None, forced: bytes = b"") -> tuple[int, list[Block]]:
        """The common prefix of a cache holding ``cached`` and ``prompt``, and the
        blocks after it that can be moved rather than evaluated (none after a
        deletion before the cursor, see ``deleted_before_cursor``)."""
        n = 0
        limit = min(len(cached), len(prompt) - 1)  # the last token is always re-evaluated
        while n < limit and cached[n] == prompt[n]:
            n += 1
        marks = None if mark is None or cached_mark is None else (cached_mark, mark)
        blocks = plan(cached, prompt, n, self.MIN_SPLICE, self.REFRESH, marks=marks,
                      window=self.WINDOW) if self.splice else []
        fim = self.b.fim
        if blocks and fim is not None and fim.order == "psm" and deleted_before_cursor(
                cached, cached_mark, prompt, mark, n, forced, self.b.text_of,
                self.b._special_id(fim.middle)):
            log.debug("kv reuse: text before the cursor was deleted; %d blocks not moved",
                      len(blocks))
            blocks = []
        return n, blocks

    SNAPSHOT_MIN = 256
    """Fewest cached tokens worth saving when the cursor jumps away."""
    SNAPSHOT_GAIN = 32
    """Fewest tokens a saved state must spare over the cache to be read back: about
    0.3 s of evaluation, against 10-20 ms to read back a state of 1,900 tokens (the
    debug log gives the time) and a few to find the best of the saved ones."""
    WARM_SLACK = 128
    """A warm-up is skipped when the cache or a saved state leaves fewer than this many
    of its tokens to evaluate: redoing a region costs its whole prompt from the first
    changed token, a request in it only the tokens left."""

    def _jump(self, prompt: list[int], mark: int | None, reused: int,
              forced: bytes = b"") -> bool:
        """Much of ``prompt`` is new to the cache: read back a saved state that serves
        it better, if there is one. When most of it is new (a far jump), the cache's
        own state is saved first. True when the cache changed."""
        store = self.snapshots
        assert store is not None
        found = self._best_saved(store, prompt, mark, forced)
        if reused < len(prompt) // 2 and self.worth_saving():
            self._save(store)
        if found is None or found[1] < reused + self.SNAPSHOT_GAIN:
            return False
        snap, value = found
        started = time.perf_counter()
        data = store.read(snap)
        if data is None:
            return False
        self.clear()
        c = self.b._c
        buf = (ctypes.c_uint8 * len(data)).from_buffer(data)
        if not c.llama_state_seq_set_data(self.b._ctx.ctx, buf, len(data), 0):  # type: ignore[attr-defined]
            log.warning("llama.cpp could not restore a KV snapshot; evaluating the prompt")
            self.clear()
            return True
        self.tokens, self.mark = list(snap.tokens), snap.mark
        log.debug("kv snapshot restored in %.1f ms: %d of %d prompt tokens reusable (the cache "
                  "had %d)", (time.perf_counter() - started) * 1000, value, len(prompt), reused)
        return True

    def covered(self, prompt: list[int], mark: int | None) -> bool:
        """Whether the cache or a saved state already holds nearly all of ``prompt``
        (all but fewer than ``WARM_SLACK`` tokens)."""
        need = len(prompt) - self.WARM_SLACK
        if _reused(*self._layout(self.tokens, self.mark, prompt, mark)) > need:
            return True
        store = self.snapshots
        found = None if store is None else self._best_saved(store, prompt, mark)
        return found is not None and found[1] > need

    def _best_saved(self, store: SnapshotStore, prompt: list[int], mark: int | None,
                    forced: bytes = b"") -> tuple[Snapshot, int] | None:
        """The saved state that lets ``prompt`` reuse the most tokens, with that count."""
        return store.best(
            lambda snap: _reused(*self._layout(snap.tokens, snap.mark, prompt, mark, forced)))

    def worth_saving(self) -> bool:
        """Whether the cache holds enough evaluated tokens to be worth a saved state."""
        return sum(1 for tok in self.tokens if tok != self.HOLE) >= self.SNAPSHOT_MIN

    def keep(self) -> bool:
        """Save the cache's state for later prompts; False without a store."""
        if self.snapshots is None:
            return False
        self._save(self.snapshots)
        return True

    def _save(self, store: SnapshotStore) -> None:
        """Write the state of sequence 0 (the cached prompt) to ``store``."""
        c = self.b._c
        ctx = self.b._ctx.ctx
        size = c.llama_state_seq_get_size(ctx, 0)  # type: ignore[attr-defined]
        buf = (ctypes.c_uint8 * size)()
        n = c.llama_state_seq_get_data(ctx, buf, size, 0)  # type: ignore[attr-defined]
        if n:
            store.save(self.tokens, self.mark, memoryview(buf)[:n])

    def _rebuild(self, prompt: list[int], n: int, blocks: list[Block],
                 cancel: threading.Event | None) -> int:
        """Keep [0, n) and ``blocks`` (moved to their new places), evaluate the rest."""
        c = self.b._c
        mem = self.b.memory()
        end = n
        for old, _, size in blocks:  # drop every cell that is not kept
            if old > end:
                self._rm(0, end, old)
            end = old + size
        self._rm(0, end, -1)
        # Move the blocks. Left moves go first from the left, right moves then from
        # the right: a block's old range never holds another block's cells then.
        for old, new, size in blocks:
            if new < old:
                c.llama_memory_seq_add(mem, 0, old, old + size, new - old)  # type: ignore[attr-defined]
        for old, new, size in reversed(blocks):
            if new > old:
                c.llama_memory_seq_add(mem, 0, old, old + size, new - old)  # type: ignore[attr-defined]
        state = [self.HOLE] * len(prompt)  # which cells exist, as tokens are evaluated
        state[:n] = prompt[:n]
        gaps, start = [], n
        for _, new, size in blocks:
            state[new:new + size] = prompt[new:new + size]
            if new > start:
                gaps.append((start, new))
            start = new + size
        gaps.append((start, len(prompt)))  # blocks never include the last token
        log.debug("kv reuse: prefix %d, %d blocks moved, gaps %s", n, len(blocks),
                  [(s, e - s) for s, e in gaps])
        try:
            for s, e in gaps:
                self._fill(prompt, s, e, last=e == len(prompt), cancel=cancel, state=state)
        except BaseException:  # cancelled or failed: record which cells exist now
            self.tokens = state
            raise
        self.tokens = list(prompt)
        return _reused(n, blocks)

    def _fill(self, prompt: list[int], s: int, e: int, *, last: bool,
              cancel: threading.Event | None, state: list[int]) -> None:
        """Evaluate prompt[s:e] in sequence 0, where later cells may already sit."""
        done = [0]
        if last:  # nothing after it: append directly
            try:
                self._eval(prompt[s:e], s, 0, cancel, done)
            finally:
                state[s:s + done[0]] = prompt[s:s + done[0]]
            return
        c = self.b._c
        mem = self.b.memory()
        self._rm(1, -1, -1)
        c.llama_memory_seq_cp(mem, 0, 1, 0, s)  # type: ignore[attr-defined]
        try:
            self._eval(prompt[s:e], s, 1, cancel, done)
        finally:
            c.llama_memory_seq_cp(mem, 1, 0, s, s + done[0])  # type: ignore[attr-defined]
            self._rm(1, -1, -1)
            state[s:s + done[0]] = prompt[s:s + done[0]]


def lookup_draft(history: list[int], previous: list[int], limit: int,
                 prompt_limit: int = PROMPT_DRAFT, prompt_keys: Sequence[int] = (3,)) -> list[int]:
    """Prompt-lookup drafts: the tokens that followed the latest occurrence of the last
    tokens of ``history`` (prompt plus what was generated so far).

    The previous suggestion is searched first, with the last 3 and then 2 tokens as the
    key, for up to ``limit`` tokens: while the user types along a suggestion, the new
    one repeats it. Then the prompt, with keys of ``prompt_keys`` tokens, for up to
    ``prompt_limit`` tokens: there a match says less, and a rejected draft costs a
    bigger batch for nothing (``python -m slm_lsp.bench_decode`` compares the rules).
    """
    sources = [(3, previous, limit), (2, previous, limit)]
    sources += [(k, history[:-1], prompt_limit) for k in prompt_keys]
    for key_len, corpus, most in sources:
        if len(history) <= key_len or most <= 0:
            continue
        key = history[-key_len:]
        for i in range(len(corpus) - key_len, -1, -1):
            if corpus[i:i + key_len] == key:
                follow = corpus[i + key_len:i + key_len + most]
                if follow:
                    return follow
    return []


Block = tuple[int, int, int]
"""A run of cached tokens to keep: (position in the cache, position in the prompt, length)."""


def deleted_before_cursor(cached: Sequence[int], cached_mark: int | None,
                          prompt: Sequence[int], mark: int | None, n: int, forced: bytes,
                          text: Callable[[Sequence[int]], bytes], middle: int | None) -> bool:
    """Whether text that stood before the cursor in the cached prompt, after the
    common prefix ``n``, is no longer in the document (prefix/suffix/middle order).

    Every cached cell after such text was computed while reading it: moved into
    the new prompt, those cells still tell the model the deleted text is there.
    On the benchmark, where a line's rest-of-line task (cursor inside the line)
    comes right before its whole-line task (the line emptied), the whole-line
    answer left out the words deleted in between (`Markup(rv)` for
    `return Markup(rv)`, jinja2/runtime.py:375).

    The new prompt's text from ``n`` on is the document from there: its prefix
    part, the healed text after the middle token and ``forced``, then the suffix
    part. The cached text must reappear in it as it was, or with text inserted
    somewhere before the new cursor (typing, a line typed above): a cursor move
    keeps it whole, a deletion or a replacement does not.
    """
    if cached_mark is None or mark is None or not n <= cached_mark or not n <= mark:
        return False
    gone = text(cached[n:cached_mark])
    if not gone.strip():
        return False
    end = len(prompt)
    if middle is not None:
        end = next((i for i in range(len(prompt) - 1, mark, -1) if prompt[i] == middle), end)
    before = text(prompt[n:mark]) + text(prompt[end + 1:]) + forced
    doc = before + text(prompt[mark + 1:end])
    if doc.startswith(gone):
        return False
    same = len(os.path.commonprefix([gone, doc]))
    resumes = doc.find(gone[same:], same)
    return resumes < 0 or resumes > len(before)


def _reused(n: int, blocks: Sequence[Block]) -> int:
    """Prompt tokens a layout keeps: the common prefix and the moved blocks."""
    return n + sum(size for _, _, size in blocks)


def plan(cached: Sequence[int], prompt: Sequence[int], n: int, min_size: int,
         refresh: int, *, marks: tuple[int, int] | None = None, window: int = 0,
         probe: int = 16) -> list[Block]:
    """Blocks of ``cached`` to move into ``prompt`` after the common prefix ``n``.

    A greedy left-to-right scan: every run of ``probe`` prompt tokens is looked
    up among the cached ones (after the previous block) and a hit is extended
    as far as both agree. Linear in the prompt length, so it costs a few
    milliseconds even when nothing matches.

    ``marks`` are the positions of the cursor marker (the FIM token between
    prefix and suffix) in the cache and in the prompt. When cached text moved
    across it (the cursor moved over that text), the ``window`` tokens on each
    side of the new marker are recomputed: the model reads them most, and
    their cached states were computed with the cursor elsewhere. Recomputing
    all the text the cursor moved over instead cost 0.3-0.5 s more per move
    (jinja2/compiler.py, moves of 15 lines) without answering more like a cold
    start (8 of 10 first 8 tokens the same, against 10 of 10 with the window).

    Blocks are in increasing order in both sequences, at least ``min_size``
    tokens long after dropping their first ``refresh`` tokens (recomputed), and
    never include the prompt's last token (its logits are needed).
    """
    end_c, end_p = len(cached), len(prompt) - 1
    if end_c - n < min_size + refresh or end_p - n < min_size + refresh:
        return []
    where: dict[tuple[int, ...], list[int]] = {}
    for j in range(n, end_c - probe + 1):
        where.setdefault(tuple(cached[j:j + probe]), []).append(j)
    runs: list[Block] = []
    i, floor = n, n
    while i + probe <= end_p:
        hits = where.get(tuple(prompt[i:i + probe]))
        j = next((h for h in hits if h >= floor), -1) if hits else -1
        if j < 0:
            i += 1
            continue
        size = probe
        while j + size < end_c and i + size < end_p and cached[j + size] == prompt[i + size]:
            size += 1
        if size - refresh >= min_size:
            runs.append((j, i, size))
            floor = j + size
        i += size
    if marks is not None:
        runs = _around_cursor(runs, marks, window)
    return [(old + refresh, new + refresh, size - refresh)
            for old, new, size in runs if size - refresh >= min_size]


def _around_cursor(runs: list[Block], marks: tuple[int, int], window: int) -> list[Block]:
    """``runs`` without the ``window`` tokens on each side of the new cursor marker,
    when some cached text moved across the marker (the cursor moved over it)."""
    mark_c, mark_p = marks
    crossed = any((old < mark_c) != (new < mark_p)
                  or (old + size - 1 < mark_c) != (new + size - 1 < mark_p)
                  for old, new, size in runs)
    if not crossed:
        return runs
    out: list[Block] = []
    for old, new, size in runs:
        # Cut [mark_p - window, mark_p + window) out of the run's prompt range.
        cut0 = min(size, max(0, mark_p - window - new))
        cut1 = min(size, max(0, mark_p + window - new))
        out += [(old, new, cut0), (old + cut1, new + cut1, size - cut1)]
    return [block for block in out if block[2] > 0]
