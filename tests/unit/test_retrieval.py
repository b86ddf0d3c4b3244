"""Retrieval for completion prompts: exclusion, budget, region cache, secrets, prompt order."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from lsprotocol import types

from indexer import persist
from indexer.chunker import Chunk
from indexer.embedder import HashEmbedder
from indexer.index import RepoIndex, SearchResult
from prompts.fim import ContextFile
from slm_lsp.backends.fake import FakeBackend
from slm_lsp.context import CursorContext
from slm_lsp.engine import CompletionEngine
from slm_lsp.retrieval import IndexRetriever, build_query, pack, region_of
from slm_lsp.settings import CompletionSettings, IndexSettings, Settings
from slm_lsp.workspace import IndexOff

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

FILES = {
    "shop/invoice.py": '''\
"""Invoices."""


def compute_invoice_total(lines, tax_rate):
    """Sum the invoice lines and add tax."""
    subtotal = sum(line.price * line.quantity for line in lines)
    return round(subtotal * (1 + tax_rate), 2)


def format_invoice_total(total, currency):
    """The total as text, with its currency."""
    return f"{total:.2f} {currency}"
''',
    "shop/tax.py": '''\
TAX_RATES = {"de": 0.19, "fr": 0.20, "uk": 0.20}


def tax_rate_for(country):
    """The VAT rate of a country."""
    return TAX_RATES.get(country, 0.0)
''',
    "shop/session.py": '''\
import hashlib


def hash_password(password, salt):
    """Derive a password hash with PBKDF2."""
    return hashlib.pbkdf2_hmac("sha256", password.encode(), salt, 100_000)


class SessionStore:
    """Keeps login sessions in memory."""

    def create_session(self, user_id):
        token = hashlib.sha256(str(user_id).encode()).hexdigest()
        return token
''',
    ".env": "INVOICE_TOTAL_API_TOKEN=sk-invoice-total-secret\n",
    "shop/api_secret.py": 'INVOICE_TOTAL_KEY = "compute invoice total secret key"\n',
}

CURRENT = '''\
from shop.invoice import compute_invoice_total
from shop.tax import tax_rate_for


def checkout(cart, country):
    """Total of a cart, taxes included."""
    rate = tax_rate_for(country)
    total = compute_invoice_total(cart.lines, rate)
    return total


def login(user, password, salt):
    """Check a password and open a session."""
    digest = hash_password(password, salt)
    return digest
'''


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> RepoIndex:
    root = tmp_path_factory.mktemp("repo")
    for rel, text in {**FILES, "shop/checkout.py": CURRENT}.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    idx = RepoIndex(root, tmp_path_factory.mktemp("cache"), embedder=HashEmbedder(dim=128))
    idx.build()
    return idx


class CountingIndex:
    """Wraps an index and counts searches."""

    def __init__(self, index: Any) -> None:
        self.inner = index
        self.root = index.root
        self.calls = 0

    def search(self, *args: Any, **kwargs: Any) -> list[SearchResult]:
        self.calls += 1
        return self.inner.search(*args, **kwargs)


def cursor(text: str, marker: str, index: Any, typed: str = "") -> CursorContext:
    """The context with the cursor after ``marker``'s line, plus ``typed`` on a new line."""
    cut = text.index(marker) + len(marker)
    prefix = text[:cut] + "\n    " + typed
    return CursorContext(
        uri=(Path(index.root) / "shop/checkout.py").as_uri(), path="shop/checkout.py",
        language="python", prefix=prefix, suffix=text[cut:], line=prefix.count("\n"),
        character=len(prefix) - prefix.rfind("\n") - 1)


def retriever_for(index: Any) -> IndexRetriever:
    retriever = IndexRetriever(FakeBackend().count_tokens, budget_ms=1000)
    retriever.index = index
    return retriever


def prompt_tokens(files: tuple[ContextFile, ...] | list[ContextFile]) -> int:
    """Tokens the files take in a prompt: separator token, path line and text."""
    count = FakeBackend().count_tokens
    return sum(count(f"{f.path}\n{f.text}") + 1 for f in files)


def test_current_file_is_never_returned(index: RepoIndex) -> None:
    ctx = cursor(CURRENT, "rate = tax_rate_for(country)", index)
    assert index.search(build_query(ctx), k=8)  # the file itself would match best
    files = retriever_for(index)(ctx, 2000)
    paths = [f.path for f in files]
    assert paths and "shop/checkout.py" not in paths
    assert "shop/invoice.py" in paths or "shop/tax.py" in paths


def test_context_fits_the_token_budget(index: RepoIndex) -> None:
    ctx = cursor(CURRENT, "rate = tax_rate_for(country)", index)
    sizes = []
    for budget in (0, 5, 30, 60, 120, 250, 2000):
        files = retriever_for(index)(ctx, budget)
        assert prompt_tokens(files) <= budget
        sizes.append(prompt_tokens(files))
    assert sizes[0] == sizes[1] == 0 and sizes[-1] > sizes[3] > 0


def test_pack_cuts_a_long_chunk_to_whole_lines_and_orders_by_path() -> None:
    long = Chunk("b.py", "python", 1, 40, "".join(f"value_{i} = {i}\n" for i in range(40)))
    short = Chunk("a.py", "python", 10, 11, "def f():\n    return 1\n")
    count = FakeBackend().count_tokens
    files = pack([SearchResult(long, 1.0), SearchResult(short, 0.5)], 60, count)
    assert [f.path for f in files] == ["a.py", "b.py"]
    assert files[1].text.startswith("value_0 = 0\n") and files[1].text.count("\n") < 40
    assert prompt_tokens(files) <= 60


def test_successive_keystrokes_in_one_region_get_identical_context(index: RepoIndex) -> None:
    counting = CountingIndex(index)
    retriever = retriever_for(counting)
    body = "total = compute_invoice_total(cart.lines, rate)\n    return total"
    answers = [retriever(cursor(CURRENT, "rate = tax_rate_for(country)", index, body[:n]), 300)
               for n in range(0, len(body), 3)]
    assert answers[0] and all(a == answers[0] for a in answers)
    assert counting.calls == 1  # one search for the region, then the cache


def test_another_region_searches_again(index: RepoIndex) -> None:
    counting = CountingIndex(index)
    retriever = retriever_for(counting)
    first = retriever(cursor(CURRENT, "rate = tax_rate_for(country)", index), 100)
    second = retriever(cursor(CURRENT, "digest = hash_password(password, salt)", index), 100)
    assert counting.calls == 2
    assert first != second and any(f.path == "shop/session.py" for f in second)


def test_region_follows_top_level_blocks_and_long_bodies() -> None:
    head = "import os\n\n\ndef first():\n    a = 1\n"
    same = region_of(head + "    b = 2\n    c")
    assert same == region_of(head + "    b = 2\n    c = 3\n    d")
    moved = region_of(head + "\n\ndef second():\n    x = 1\n    y")
    assert moved != same
    long_body = head + "".join(f"    v{i} = {i}\n" for i in range(45)) + "    z"
    assert region_of(long_body).anchor == same.anchor and region_of(long_body) != same
    far = "x = 1\n" * 1000 + head + "    b"
    assert region_of(far).anchor == 1000 + 3 and region_of(far).bucket == 0


def test_secret_files_never_reach_the_prompt(index: RepoIndex) -> None:
    assert ".env" not in index.files() and "shop/api_secret.py" not in index.files()
    ctx = cursor("INVOICE_TOTAL_API_TOKEN compute invoice total secret key\n", "key", index)

    class LeakyIndex(CountingIndex):
        """An index that (wrongly) holds a secret file."""

        def search(self, *args: Any, **kwargs: Any) -> list[SearchResult]:
            leak = Chunk(".env", "text", 1, 1, FILES[".env"])
            key = Chunk("config/credentials.json", "json", 1, 1, '{"token": "abc"}\n')
            return [SearchResult(leak, 1.0, 1.0), SearchResult(key, 0.9, 0.9),
                    *super().search(*args, **kwargs)]

    for source in (index, LeakyIndex(index)):
        files = retriever_for(source)(ctx, 2000)
        text = "".join(f.path + f.text for f in files)
        assert "sk-invoice" not in text and "secret key" not in text and "abc" not in text


def test_lexical_only_answers_are_retried_later(index: RepoIndex) -> None:
    now = [0.0]

    class LexicalOnly(CountingIndex):
        def search(self, *args: Any, **kwargs: Any) -> list[SearchResult]:
            return [SearchResult(r.chunk, r.score, None, r.lexical)
                    for r in super().search(*args, **kwargs)]

    counting = LexicalOnly(index)
    retriever = IndexRetriever(FakeBackend().count_tokens, budget_ms=1000, retry_s=3,
                               clock=lambda: now[0])
    retriever.index = counting
    ctx = cursor(CURRENT, "rate = tax_rate_for(country)", index)
    first = retriever(ctx, 300)
    now[0] = 1.0
    assert retriever(ctx, 300) is first and counting.calls == 1
    now[0] = 5.0
    assert retriever(ctx, 300) is first and counting.calls == 2  # same files: same object


def test_no_index_means_no_context(index: RepoIndex) -> None:
    retriever = IndexRetriever(FakeBackend().count_tokens)
    assert retriever(cursor(CURRENT, "rate = tax_rate_for(country)", index), 500) == ()


def test_prompt_puts_stable_context_before_the_current_file(index: RepoIndex) -> None:
    backend = FakeBackend("x")
    engine = CompletionEngine(backend, CompletionSettings(), retriever=retriever_for(index),
                              context_tokens=300, repo_name="shop")
    body = "total = compute_invoice_total(cart.lines, rate)"
    for n in (1, 12, 30):
        engine.complete(cursor(CURRENT, "rate = tax_rate_for(country)", index, body[:n] + " "))
    prompts = backend.prompts
    assert len(prompts) == 3
    current = prompts[0].index("<|file_sep|>shop/checkout.py\n")
    context = prompts[0][:current]
    assert context.startswith("<|repo_name|>shop\n<|file_sep|>shop/")
    assert "def compute_invoice_total" in context or "def tax_rate_for" in context
    assert prompts[0].index("<|fim_prefix|>from shop.invoice import") > current
    above = "    rate = tax_rate_for(country)\n"
    head = prompts[0][: prompts[0].index(above) + len(above)]
    assert all(p.startswith(head) for p in prompts)  # the cached prompt start never moves


# ----- the index feature, with a stub server (no subprocess, hashing embedder) ----------


class StubServer:
    """The parts of SlmServer the index feature uses."""

    def __init__(self, root: Path, settings: Settings | None = None) -> None:
        # These tests are about the search index, which definition context alone does not build.
        self.settings = settings or Settings(index=IndexSettings(context="both"))
        self.root = str(root)
        self.loop = None
        self.statuses: list[tuple[str, str]] = []
        self.shown: list[str] = []
        self.host = SimpleNamespace(state="ready", backend=lambda: None)
        self.workspace = SimpleNamespace(text_documents={})
        self.client_capabilities = types.ClientCapabilities()

    def status(self, state: str, message: str) -> None:
        self.statuses.append((state, message))

    def show(self, message: str, kind: Any = None) -> None:
        self.shown.append(message)

    def yield_to_completions(self, max_wait: float = 30.0, cancel: Any = None) -> None:
        """No completions run in these tests."""


@pytest.fixture()
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SLM_LSP_HOME", str(tmp_path / "home"))
    root = tmp_path / "ws"
    for rel, text in FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def start_feature(root: Path, settings: Settings | None = None,
                  server: StubServer | None = None) -> tuple[Any, StubServer]:
    from slm_lsp.features.index import IndexFeature

    server = server or StubServer(root, settings)
    feature = IndexFeature(server, make_index=lambda r, cache, kb: RepoIndex(
        r, cache, embedder=HashEmbedder(dim=128), max_file_kb=kb)).workspace
    feature.on_initialized()
    return feature, server


def test_definition_context_alone_builds_no_search_index_and_says_so(workspace: Path) -> None:
    feature, _ = start_feature(workspace, Settings())  # the default: slm.index.context definitions
    assert Settings().index.context == "definitions"
    assert feature.index is None and not feature.building()
    with pytest.raises(IndexOff, match='slm.index.context is "definitions"'):
        feature.search_json("anything", 3)


def test_feature_builds_in_the_background_and_answers_searches(workspace: Path) -> None:
    feature, server = start_feature(workspace)
    assert feature.ready.wait(30)
    rows = feature.search_json("compute invoice total with tax", 3)["results"]
    assert rows[0]["path"] == "shop/invoice.py"
    assert set(rows[0]) == {"path", "start_line", "end_line", "score", "symbol"}
    assert feature.retriever.index is feature.index and feature.watcher is not None
    assert "shop/tax.py" in feature.files() and ".env" not in feature.files()
    assert feature.search("tax rate of a country", k=1)[0].chunk.path == "shop/tax.py"
    deadline = time.monotonic() + 5  # `ready` is set just before the status goes back
    while server.statuses[-1][0] != "ready" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.statuses[0][0] == "indexing" and server.statuses[-1] == ("ready", "model ready")
    cache = feature.index.cache_dir
    feature.on_shutdown()
    assert feature.index is None and feature.retriever.index is None
    assert persist.exists(cache) and not server.shown


class WaitingServer(StubServer):
    """Records every time the index steps aside for completions, and with which event."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.yields: list[Any] = []

    def yield_to_completions(self, max_wait: float = 30.0, cancel: Any = None) -> None:
        self.yields.append(cancel)


def test_the_build_steps_aside_for_completions_between_embedding_steps(workspace: Path) -> None:
    from indexer.index import EMBED_STEP

    feature, server = start_feature(workspace, server=WaitingServer(workspace))
    assert feature.ready.wait(30)
    steps = -(-feature.index.stats().chunks // EMBED_STEP)
    cancel = feature._cancel
    # one wait when the build starts, one before each embedding step, others between files:
    # all stop with the build
    assert len(server.yields) >= 1 + steps > 1
    assert all(event is cancel for event in server.yields)
    feature.on_shutdown()


class GatedServer(StubServer):
    """Holds the index's second wait for completions (the one before the watcher starts)
    until `gate` is set; records the cancel events it was given."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.gate = threading.Event()
        self.calls = 0

    def yield_to_completions(self, max_wait: float = 30.0, cancel: Any = None) -> None:
        self.calls += 1
        if self.calls == 2:
            self.gate.wait(10)


def test_the_watcher_waits_and_completions_search_only_a_complete_index(workspace: Path) -> None:
    feature, server = start_feature(workspace, server=GatedServer(workspace))
    deadline = time.monotonic() + 10
    while server.calls < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    # the index is open for searches before the watcher's wait; completions get similar
    # chunks only once it is complete (this one is new: after its first build)
    assert server.calls == 2 and feature.loaded.is_set() and feature.watcher is None
    assert feature.retriever.index is None and feature.files() == []
    server.gate.set()
    assert feature.ready.wait(30) and feature.watcher is not None
    assert feature.retriever.index is feature.index and "shop/tax.py" in feature.files()
    feature.on_shutdown()
    server = GatedServer(workspace)  # a saved index: searched at once
    feature, _ = start_feature(workspace, server=server)
    deadline = time.monotonic() + 10
    while server.calls < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.calls == 2 and feature.retriever.index is feature.index
    assert "shop/tax.py" in feature.files()
    server.gate.set()
    feature.on_shutdown()


class UnloadedEmbedder(HashEmbedder):
    """Starts unloaded, as the real model does; records what its load was given to pause with."""

    def __init__(self) -> None:
        super().__init__(dim=128)
        self.loaded = False
        self.pause: Any = None
        self.texts = 0

    def load(self, pause: Any = None) -> None:
        self.pause, self.loaded = pause, True

    def embed(self, texts: list[str]) -> Any:
        self.texts += len(texts)
        return super().embed(texts)


def test_the_build_loads_the_embedding_model_first_even_with_nothing_to_embed(
        workspace: Path) -> None:
    """The model's imports cannot pause once begun: they run when the server starts, not
    when a search first needs them (on a saved index, maybe just as the user types)."""
    from indexer.records import IndexProgress
    from slm_lsp.features.index import IndexFeature, progress_message

    for build in ("first", "restart"):
        embedder = UnloadedEmbedder()
        feature = IndexFeature(StubServer(workspace), make_index=lambda r, cache, kb, e=embedder: RepoIndex(
            r, cache, embedder=e, max_file_kb=kb)).workspace
        feature.on_initialized()
        assert feature.ready.wait(30)
        assert embedder.loaded and embedder.pause == feature._step_aside, build
        assert (embedder.texts > 0) == (build == "first")  # the restart embedded nothing
        hits = feature.index.search("tax rate of a country", k=2, budget_ms=1000)
        assert progress_message(IndexProgress("loading", 0, 0, 0, 0.0)) == (
            "loading the embedding model")
        assert any(hit.dense is not None for hit in hits)
        feature.on_shutdown()


def test_a_broken_saved_index_is_rebuilt_with_one_message(workspace: Path) -> None:
    feature, _ = start_feature(workspace)
    assert feature.ready.wait(30)
    cache = feature.index.cache_dir
    feature.on_shutdown()
    for file in cache.glob("gen-*/*"):
        file.write_bytes(b"garbage")
    feature, server = start_feature(workspace)
    assert feature.ready.wait(30)
    assert len(server.shown) == 1 and "unusable" in server.shown[0]
    assert feature.search_json("hash a password", 2)["results"][0]["path"] == "shop/session.py"
    feature.on_shutdown()


def record_updates(feature: Any) -> list[str]:
    """The texts the index has finished taking through update_file, in order.

    A text is listed only once its update has returned, so a test that sees it
    can search for it at once.
    """
    calls: list[str] = []
    update = feature.index.update_file

    def recorded(path: str, text: str) -> bool:
        done = update(path, text)
        calls.append(text)
        return done

    feature.index.update_file = recorded
    return calls


def test_unsaved_edits_are_indexed_once_after_a_pause(workspace: Path) -> None:
    feature, server = start_feature(workspace)
    assert feature.ready.wait(30)
    calls = record_updates(feature)
    uri = (workspace / "shop" / "shipping.py").as_uri()
    for n in range(1, 4):
        server.workspace.text_documents[uri] = SimpleNamespace(
            source=f"def parcel_shipping_cost_{n}(weight):\n    return weight * {n}\n")
        feature.schedule(uri, str(workspace / "shop" / "shipping.py"), 0.3)
        time.sleep(0.05)
    deadline = time.monotonic() + 10
    while not calls and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.4)
    assert len(calls) == 1 and "parcel_shipping_cost_3" in calls[0]
    rows = feature.search_json("parcel shipping cost", 2)["results"]
    assert rows[0]["path"] == "shop/shipping.py"
    feature.on_shutdown()


def test_an_edit_during_a_build_is_indexed_after_it(workspace: Path) -> None:
    server = GatedServer(workspace)  # the build waits before its watcher starts
    feature, _ = start_feature(workspace, server=server)
    deadline = time.monotonic() + 10
    while server.calls < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert feature.building() and feature.loaded.is_set()
    calls = record_updates(feature)
    uri = (workspace / "shop" / "shipping.py").as_uri()
    server.workspace.text_documents[uri] = SimpleNamespace(
        source="def parcel_shipping_cost(weight):\n    return weight * 3\n")
    feature.schedule(uri, str(workspace / "shop" / "shipping.py"), 0.05)
    time.sleep(0.5)
    assert calls == [] and uri in feature._deferred  # not beside the build
    server.gate.set()
    assert feature.ready.wait(30)
    deadline = time.monotonic() + 10
    while not calls and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(calls) == 1 and "parcel_shipping_cost" in calls[0]  # after it
    assert feature.search_json("parcel shipping cost", 2)["results"][0]["path"] == "shop/shipping.py"
    feature.on_shutdown()


def test_disabled_index_does_nothing_and_search_says_so(workspace: Path) -> None:
    from slm_lsp.workspace import IndexOff

    settings = Settings(index=IndexSettings(enabled=False))
    feature, server = start_feature(workspace, settings)
    assert feature.index is None and not server.statuses
    with pytest.raises(IndexOff, match="off"):
        feature.search_json("anything", 3)
    assert feature.files() == [] and feature.search("anything") == []


def test_the_search_command_answers_a_json_rpc_error_when_the_index_is_off(workspace: Path) -> None:
    from pygls.exceptions import JsonRpcException

    from slm_lsp.features.index import IndexFeature

    server = StubServer(workspace, Settings(index=IndexSettings(enabled=False)))
    feature = IndexFeature(server)
    feature.workspace.on_initialized()
    with pytest.raises(JsonRpcException, match="the repository index is off"):
        feature.search_json("anything", 3)
