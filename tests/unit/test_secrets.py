"""Secrets found by content: realistic fixtures are replaced, ordinary code is left alone, and
none reaches a completion prompt, an explanation prompt or the index."""

from __future__ import annotations

import base64
import random
import threading

import pytest

from indexer.embedder import HashEmbedder
from indexer.index import RepoIndex
from indexer.secrets import MARK, find, redact
from slm_lsp.backends.fake import FakeBackend
from slm_lsp.context import CursorContext
from slm_lsp.engine import CompletionEngine
from slm_lsp.settings import CompletionSettings


def _pem(kind: str = "RSA") -> tuple[str, list[str]]:
    """A private key block shaped like a real one (64-character base64 lines), and its body lines."""
    rng = random.Random(kind)
    body = base64.b64encode(bytes(rng.randrange(256) for _ in range(1190))).decode()
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    head = f"{kind} PRIVATE KEY" if kind else "PRIVATE KEY"
    return f"-----BEGIN {head}-----\n" + "\n".join(lines) + f"\n-----END {head}-----\n", lines


AWS_ID = "AKIAIOSFODNN7EXAMPLE"  # AWS's documented example key pair
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
GITHUB = "ghp_" + "".join(random.Random(1).choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789")
                          for _ in range(36))

LEAKY_SOURCES = {
    "deploy/helpers.py": (
        'import boto3\n\n'
        f'ACCESS_KEY_ID = "{AWS_ID}"\n'
        f'AWS_SECRET_ACCESS_KEY = "{AWS_SECRET}"\n\n'
        'def client():\n    return boto3.client("s3", aws_access_key_id=ACCESS_KEY_ID)\n',
        [AWS_ID, AWS_SECRET]),
    "app/settings.py": (
        'DATABASE_URL = "postgresql://app:S3cr3t-pa55w0rd@db.internal:5432/app"\n'
        'API_TOKEN = "' + GITHUB + '"\n'
        'SECRET_KEY = "k9#Lm2$vQ8!xR4pZ"\n',
        ["S3cr3t-pa55w0rd", GITHUB, "k9#Lm2$vQ8!xR4pZ"]),
    "config/app.yaml": (
        "database:\n  host: db.internal\n  password: 'Tr0ub4dor&3xyz'\n"
        "slack:\n  webhook_token: \"xoxb-2048-90210-a1B2c3D4e5F6\"\n",
        ["Tr0ub4dor&3xyz", "xoxb-2048-90210-a1B2c3D4e5F6"]),
    "web/client.js": (
        'const config = {\n  "apiKey": "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY",\n'
        '  authDomain: "example.firebaseapp.com",\n};\n',
        ["AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY"]),
    "notes/keys.txt": (_pem("RSA")[0] + "\n" + _pem("OPENSSH")[0],
                       _pem("RSA")[1] + _pem("OPENSSH")[1]),
}

HARMLESS = [
    'password = os.environ["DB_PASSWORD"]\n',
    'token = request.headers.get("X-Token")\n',
    'PASSWORD_FIELD = "password"\n',
    'secret_key = "change-me"\n',
    'api_key = "${API_KEY}"\n',
    'TOKEN_HEADER = "authorization_token"\n',
    'url = "https://user@example.com/repo.git"\n',
    'def check_password(password: str) -> bool:\n    return hash(password) == STORED\n',
    '"""A token is the unit the model reads; see tokenize()."""\n',
    'KEY_NAMES = ("BEGIN", "END")  # -----BEGIN CERTIFICATE----- is public\n',
]


@pytest.mark.parametrize("path", sorted(LEAKY_SOURCES))
def test_realistic_secrets_are_replaced_and_the_code_around_them_kept(path):
    text, secrets = LEAKY_SOURCES[path]
    out = redact(text)
    for secret in secrets:
        assert secret not in out, (path, secret)
    assert out.count("\n") == text.count("\n")  # lines stay where they were
    assert redact(out) == out  # stable: redacting again changes nothing
    if "PRIVATE KEY" not in text:
        assert MARK in out
    if path == "deploy/helpers.py":
        assert 'return boto3.client("s3", aws_access_key_id=ACCESS_KEY_ID)' in out


@pytest.mark.parametrize("text", HARMLESS)
def test_ordinary_code_is_left_alone(text):
    assert find(text) == [] and redact(text) == text


def test_a_key_block_cut_by_a_prompt_window_is_still_emptied():
    pem, body = _pem("EC")
    head = pem[:pem.index(body[5])]  # the window ends inside the block
    tail = pem[pem.index(body[8]):]  # the window starts inside it
    assert body[3] not in redact("x = 1\n" + head)
    out = redact(tail + "def after():\n    pass\n")
    assert body[9] not in out and "def after():" in out


def test_no_secret_reaches_a_completion_prompt():
    text, secrets = LEAKY_SOURCES["app/settings.py"]
    backend = FakeBackend("")
    engine = CompletionEngine(backend, CompletionSettings(token_healing=False))
    prefix = text + "\ndef connect():\n    return "
    engine.complete(CursorContext(prefix=prefix, suffix="\n" + text, path="app/settings.py",
                                  language="python", uri="file:///app/settings.py",
                                  line=prefix.count("\n"), character=11))
    assert backend.prompts and all(s not in p for s in secrets for p in backend.prompts)


def test_no_secret_reaches_an_explanation_prompt(tmp_path):
    from slm_lsp.explain.cache import ExplainCache
    from slm_lsp.explain.explainer import Explainer
    from slm_lsp.explain.router import ModelRouter
    from slm_lsp.settings import ExplainSettings
    from slm_lsp.symbols.tree import SourceTree

    text, secrets = LEAKY_SOURCES["deploy/helpers.py"]
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy" / "helpers.py").write_text(text)
    backend = FakeBackend("It builds an S3 client with the keys above.")
    explainer = Explainer(SourceTree(str(tmp_path), open_docs=lambda: {}, rescan_s=0),
                          ModelRouter(lambda timeout: backend), ExplainCache(tmp_path / "cache"),
                          ExplainSettings(max_tokens=50))
    fields = explainer.selection_fields(str(tmp_path / "deploy" / "helpers.py"), text, "python",
                                        0, text.count("\n"))
    assert any(s in fields["selection"] for s in secrets)  # the selection holds them
    explainer.run_task("selection", fields, threading.Event(), None)
    assert backend.prompts and all(s not in p for s in secrets for p in backend.prompts)


def test_no_secret_reaches_the_index(tmp_path):
    root = tmp_path / "repo"
    for rel, (text, _) in LEAKY_SOURCES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    index = RepoIndex(root, tmp_path / "cache", embedder=HashEmbedder())
    index.build()
    chunks = [c for rel in LEAKY_SOURCES for c in index.chunks_of(rel)]
    assert {c.path for c in chunks} >= {"app/settings.py", "deploy/helpers.py"}
    stored = "\n".join(c.text for c in chunks)
    stored += "".join(p.read_bytes().decode("latin-1") for p in (tmp_path / "cache").rglob("*")
                      if p.is_file())
    for _, secrets in LEAKY_SOURCES.values():
        for secret in secrets:
            assert secret not in stored, secret
