"""In-process GGUF backend on llama.cpp (llama-cpp-python's low-level API).

We drive llama.cpp ourselves instead of ``Llama.create_completion`` for three
reasons: cancellation must stop decoding at the next token, the KV cache must
be reused across requests in ways the high-level class does not do (see
``KVCache.sync``), and nothing may ever write to stdout (the protocol channel):
the high-level class redirects file descriptors while loading, which would
race with the server writing responses.

The module is one class and the bookkeeping of one generation (``_Run``): the
class's methods share its llama.cpp handles. What it delegates has a module of
its own: the KV cache (``kv``), drafting (``draft``), token healing
(``healing``), the vocabulary (``vocab``), saved states (``snapshots``) and
loading llama.cpp (``native``).
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from prompts.fim import FimFamily, Segment, detect_family

from ..paths import cache_root
from .base import BackendError, Cancelled, Generation, StopRule
from .draft import PROMPT_DRAFT, lookup_draft
from .healing import heal_split
from .kv import KVCache
from .native import default_threads, init_llama, read_gguf_header
from .snapshots import SnapshotStore
from .vocab import PieceTable

log = logging.getLogger(__name__)


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
        self._c = init_llama()
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
        self._piece_table = shared._pieces() if shared is not None else None
        self._pieces()
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
        return int(np.argmax(self._logits(row)))

    def _logits(self, row: int = -1) -> np.ndarray:
        ptr = self._ctx.get_logits_ith(row)
        return np.ctypeslib.as_array(ptr, shape=(self._n_vocab,))

    def logprob(self, token: int, row: int = -1) -> float:
        """Natural-log probability of ``token`` under an output row's logits."""
        logits = self._logits(row)
        top = float(logits.max())
        return float(logits[token]) - top - float(np.log(np.exp(logits - top).sum()))

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
        avoid: str = "",
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
            return self._generate(tokens, max_tokens, stop, cancel, forced, avoid)

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
        """Every token's bytes, computed once (for constrained first tokens and the KV
        cache's layout), at load: the first request would otherwise wait for it."""
        if self._piece_table is None:
            self._piece_table = PieceTable(self._all_pieces())
        return self._piece_table

    def _all_pieces(self) -> Iterator[bytes]:
        """``piece`` of every token id in order, through one reused buffer (about 40%
        faster over the default model's 151,936 tokens than a buffer per token)."""
        to_piece = self._c.llama_token_to_piece  # type: ignore[attr-defined]
        size = 256
        buf = ctypes.create_string_buffer(size)
        for token in range(self._n_vocab):
            n = to_piece(self._vocab, token, buf, size, 0, False)
            yield ctypes.string_at(buf, n) if n >= 0 else self.piece(token)

    _piece_table: PieceTable | None = None

    def pick(self, need: bytes, row: int = -1,
             allowed: Callable[[int], bool] | None = None) -> int:
        """The most likely token consistent with the bytes that must come next.

        Used for token healing: the prompt ends before a partly typed word and
        the output must begin with that word's characters. Among the likeliest,
        a token ``allowed`` refuses is passed over (with nothing forced, the greedy
        pick stands when ``allowed`` refuses all of them).
        """
        if not need and allowed is None:
            return self.argmax(row)
        pieces = self._pieces()
        logits = self._logits(row)
        top = np.argpartition(logits, -256)[-256:]
        for tok in top[np.argsort(logits[top])[::-1]]:
            p = pieces[int(tok)]
            fits = not need or (p and (p.startswith(need) or need.startswith(p)))
            if fits and not self.is_end(int(tok)) and (allowed is None or allowed(int(tok))):
                return int(tok)
        if not need:
            return self.argmax(row)
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
        avoid: str = "",
    ) -> Generation:
        t0 = time.perf_counter()
        need = forced.encode("utf-8")
        reused = self.kv.sync(tokens, cancel, self._cursor_mark(tokens), need)
        t1 = time.perf_counter()
        run = _Run(self, need, stop, max_tokens, avoid)
        history = list(tokens)
        pos = len(tokens)
        logit_i = -1  # which output row of the last batch predicts the next token
        drafted = accepted = 0
        logprobs: list[float] = []  # of every token chosen, the one that ends the run included
        try:
            while run.reason is None:
                tok = self.pick(run.pending(), logit_i, run.allowed if run.avoiding() else None)
                logprobs.append(self.logprob(tok, logit_i))
                if not run.accept(tok):
                    break
                history.append(tok)
                if cancel is not None and cancel.is_set():
                    raise Cancelled()
                draft = [] if run.pending() or run.avoiding() or not self.draft_tokens else \
                    self._draft(history, self.draft_tokens)
                self.decode([tok, *draft], pos, all_logits=bool(draft))
                pos += 1
                logit_i = 0 if draft else -1
                drafted += len(draft)
                for j, guess in enumerate(draft):  # keep the draft as far as greedy agrees
                    if self.argmax(j) != guess:
                        break
                    logprobs.append(self.logprob(guess, j))
                    if not run.accept(guess):
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
            mean_logprob=sum(logprobs) / len(logprobs) if logprobs else None,
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


class _Run:
    """Bookkeeping of one generation: text so far, forced start, stop decisions."""

    def __init__(self, backend: LlamaBackend, need: bytes, stop: StopRule | None,
                 max_tokens: int, avoid: str = "") -> None:
        self.b = backend
        self.need = need
        self.avoid = avoid.strip()
        self.asked_other = bool(avoid)
        self.stop = stop
        self.limit = max_tokens + len(need)
        self.out = bytearray()
        self.text = ""
        self.n = 0
        self.reason: str | None = None

    def pending(self) -> bytes:
        """Forced bytes not generated yet (token healing)."""
        return self.need[len(self.out):] if len(self.out) < len(self.need) else b""

    def _answer(self, out: bytes | bytearray) -> str:
        """The generated text after the forced bytes."""
        return out[len(self.need):].decode("utf-8", errors="ignore")

    def avoiding(self) -> bool:
        """Whether the next token is still checked by ``allowed``: an answer other than
        ``avoid`` was asked for and nothing but blanks has been generated yet."""
        return self.asked_other and not self.text.strip()

    def allowed(self, tok: int) -> bool:
        """Whether ``tok`` may come next while ``avoiding``: not an end token, not a line
        break before any text, and not the start of the answer to avoid."""
        if self.b.is_end(tok):
            return False
        text = self._answer(self.out + self.b.piece(tok))
        head = text.lstrip(" \t")
        if head.startswith(("\n", "\r")):
            return False
        word = text.strip()
        return not (word and self.avoid and self.avoid.startswith(word))

    def accept(self, tok: int) -> bool:
        """Add a token; False when generation must end here (the token is not added
        for an end token, and the text is cut where a stop rule says)."""
        if self.b.is_end(tok):
            self.reason = "eog"
            return False
        self.out += self.b.piece(tok)
        self.n += 1
        if len(self.out) >= len(self.need):
            self.text = self._answer(self.out)
            cut = self.stop(self.text) if self.stop else None
            if cut is not None:
                self.text = self.text[:cut]
                self.reason = "stop"
                return False
        if self.n >= self.limit:
            self.reason = "length"
            return False
        return True
