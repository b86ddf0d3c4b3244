"""Faults: the server killed at random moments, two servers and `slm-lsp index` on one
workspace. The real server process, with the test backend and the hashing embedder (see
``fake_model_server.py``) so that twenty starts take seconds, not minutes.

After every fault the next start must serve completions and search, tell the user
nothing about a corrupt index, and end with exactly the chunks a clean build makes.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from .conftest import server_env
from .raw_client import RawServer

HERE = Path(__file__).parent
LAUNCHER = [sys.executable, str(HERE / "fake_model_server.py")]
REAL_SERVER = [sys.executable, "-m", "slm_lsp", "serve", "--log-level", "info"]
SLM = {"index": {"context": "both"}, "completion": {"timeoutMs": 20000}}
ENV = {"SLM_TEST_HASH_EMBEDDER": "1"}


def _workspace(base: Path) -> Path:
    """A project of a few hundred real source files nobody here wrote (hypothesis's)."""
    import hypothesis

    root = base / "project"
    shutil.copytree(Path(hypothesis.__file__).parent, root / "hypothesis",
                    ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    return root


def _chunks(root: Path, home: Path) -> list[tuple[Any, ...]]:
    """Every chunk of the index saved for ``root`` under ``home`` (loaded as the server would)."""
    from indexer.embedder import HashEmbedder
    from indexer.index import RepoIndex

    old = os.environ.get("SLM_LSP_HOME")
    os.environ["SLM_LSP_HOME"] = str(home)
    try:
        from slm_lsp.paths import index_dir

        index = RepoIndex(root, index_dir(root), embedder=HashEmbedder())
        index.load()
        return sorted((c.path, c.start_line, c.end_line, c.text)
                      for rel in index.files() for c in index.chunks_of(rel))
    finally:
        if old is None:
            os.environ.pop("SLM_LSP_HOME", None)
        else:
            os.environ["SLM_LSP_HOME"] = old


def _clean_build(root: Path, base: Path) -> list[tuple[Any, ...]]:
    home = base / "clean-home"
    subprocess.run([*LAUNCHER, "index", str(root)], env=server_env(SLM_LSP_HOME=str(home), **ENV),
                   check=True, capture_output=True, timeout=600)
    return _chunks(root, home)


def _serve(root: Path, home: Path, name: str) -> RawServer:
    server = RawServer([*LAUNCHER, "serve", "--log-level", "info"], home, f"{name}.log", **ENV)
    server.initialize(SLM, root)
    return server


def _answers(server: RawServer, root: Path, tag: str) -> None:
    """A completion and a search are answered (the search from the index, once it is built)."""
    _answers_completion(server, root, tag)
    server.send({"jsonrpc": "2.0", "id": f"s-{tag}", "method": "workspace/executeCommand",
                 "params": {"command": "slm.search", "arguments": ["strategy draw", 3]}})
    assert server.wait([f"s-{tag}"], 60) == [], server.log.read_text()[-3000:]


def _wait_built(server: RawServer, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not server.progress_ended():
        assert server.proc.poll() is None, server.log.read_text()[-3000:]
        assert time.monotonic() < deadline, "the index build did not end"
        time.sleep(0.2)


def _no_corruption_told(server: RawServer) -> None:
    told = [m for m in server.messages() if "corrupt" in m.lower() or "damaged" in m.lower()]
    assert told == [], told


def test_killed_twenty_times_at_random_moments_loses_nothing():
    base = Path(tempfile.mkdtemp(prefix="slm-kill-"))
    root = _workspace(base)
    clean = _clean_build(root, base)
    assert len(clean) > 500
    home = base / "home"
    rng = random.Random(21)
    for n in range(20):
        server = _serve(root, home, f"kill-{n}")
        # hover and completions write the explanation cache and the result caches meanwhile
        uri = (root / "hypothesis" / "core.py").as_uri()
        text = (root / "hypothesis" / "core.py").read_text()
        server.open_document(uri, text)
        row = next(i for i, x in enumerate(text.split("\n")) if x.startswith("def "))
        server.send({"jsonrpc": "2.0", "id": f"h-{n}", "method": "textDocument/hover", "params": {
            "textDocument": {"uri": uri}, "position": {"line": row, "character": 5}}})
        time.sleep(rng.uniform(0.0, 2.5))
        server.proc.kill()
        server.proc.wait(10)
    server = _serve(root, home, "after")
    try:
        _wait_built(server)
        _answers(server, root, "after")
        _no_corruption_told(server)
    finally:
        server.stop()
    assert _chunks(root, home) == clean


def test_two_servers_and_the_index_command_on_one_workspace():
    base = Path(tempfile.mkdtemp(prefix="slm-two-"))
    root = _workspace(base)
    clean = _clean_build(root, base)
    home = base / "home"
    first, second = _serve(root, home, "first"), _serve(root, home, "second")
    cli = subprocess.Popen([*LAUNCHER, "index", str(root)], stdout=subprocess.DEVNULL,
                           stderr=(home / "cli.log").open("wb"),
                           env=server_env(SLM_LSP_HOME=str(home), **ENV))
    try:
        for n in range(3):  # both answer while the index is being built by one of the three
            _answers(first, root, f"first-{n}")
            _answers(second, root, f"second-{n}")
        assert cli.wait(600) == 0, (home / "cli.log").read_text()[-3000:]
        _wait_built(first)
        _wait_built(second)
        for server, tag in ((first, "first-end"), (second, "second-end")):
            _answers(server, root, tag)
            _no_corruption_told(server)
            assert server.proc.poll() is None
            assert "Traceback" not in server.log.read_text(), server.log.read_text()[-3000:]
    finally:
        first.stop()
        second.stop()
        if cli.poll() is None:
            cli.kill()
    assert _chunks(root, home) == clean



def _confined(home: Path, mount: str) -> list[str]:
    """The server in its own mount namespace with ``home`` on a tiny tmpfs (``full``: 256 KiB,
    filled by the index build; ``readonly``: mounted read-only)."""
    script = f"mount -t tmpfs -o size=256k tmpfs {home}"
    if mount == "readonly":
        script += f" && mount -o remount,ro {home}"
    return ["unshare", "-m", "sh", "-c", f'{script} && exec "$0" "$@"', *LAUNCHER,
            "serve", "--log-level", "info"]


@pytest.mark.parametrize("mount", ["full", "readonly"])
def test_a_full_or_read_only_cache_is_told_once_and_completions_go_on(mount):
    if subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode != 0:
        pytest.fail("this test needs `unshare -m` (root, or a user namespace) to mount a tmpfs")
    base = Path(tempfile.mkdtemp(prefix=f"slm-{mount}-"))
    root = _workspace(base)
    home = base / "home"
    for start in range(2):  # a second start meets the same cache (a fresh tmpfs each time)
        # The log file is opened here, under the mount point, before the server hides it.
        server = RawServer(_confined(home, mount), home, f"{mount}-{start}.log", **ENV)
        try:
            server.initialize(SLM, root)
            deadline = time.monotonic() + 120
            while not server.messages() and time.monotonic() < deadline:
                time.sleep(0.2)
            for n in range(3):
                _answers_completion(server, root, f"{mount}-{start}-{n}")
            time.sleep(2)
            told = server.messages()
            about_cache = [m for m in told if str(home) in m or "cache" in m.lower()
                           or "space" in m.lower() or "read-only" in m.lower()]
            assert len(about_cache) == 1, told  # once, and it says what is wrong
            assert "cannot be written" in about_cache[0] and str(home) in about_cache[0], told
            assert not [m for m in told if "corrupt" in m.lower()], told
            assert server.proc.poll() is None
        finally:
            server.stop()


def _answers_completion(server: RawServer, root: Path, tag: str) -> None:
    uri = (root.parent / f"scratch_{tag}.py").as_uri()
    server.open_document(uri, "def f(value):\n    return \n")
    server.ask_completion(f"c-{tag}", uri, 1, 11)
    assert server.wait([f"c-{tag}"], 60) == [], server.log.read_text()[-3000:]
    assert "result" in server.responses[f'"c-{tag}"'], server.responses[f'"c-{tag}"']


@pytest.mark.model
@pytest.mark.parametrize("change", ["truncated", "replaced"])
def test_a_model_file_changed_under_the_server(model_installed: Path, change: str):
    """The model file cut short in place, or replaced by a broken one, while it serves: the
    server stays up and answers (the weights it loaded), and `model verify` names the fault."""
    base = Path(tempfile.mkdtemp(prefix=f"slm-model-{change}-"))
    copy = base / "model.gguf"
    shutil.copyfile(model_installed, copy)
    server = RawServer(REAL_SERVER, base)
    try:
        server.initialize({"model": {"path": str(copy)}, "index": {"enabled": False},
                           "completion": {"timeoutMs": 120000}})
        deadline = time.monotonic() + 120
        while not any(n["method"] == "slm/status" and n["params"]["state"] == "ready"
                      for n in list(server.notifications)):
            assert time.monotonic() < deadline, server.log.read_text()[-3000:]
            time.sleep(0.2)
        _answers_completion(server, base, "before")
        size = copy.stat().st_size
        if change == "truncated":
            os.truncate(copy, size // 3)
        else:
            broken = base / "broken.gguf"
            broken.write_bytes(copy.read_bytes()[: size // 2])
            os.replace(broken, copy)
        for n in range(3):
            _answers_completion(server, base, f"after-{n}")
        assert server.proc.poll() is None, server.log.read_text()[-3000:]
    finally:
        server.stop()
    verify = subprocess.run([sys.executable, "-m", "slm_lsp", "model", "verify", "--path", str(copy)],
                            capture_output=True, text=True, env=server_env(), timeout=120)
    assert verify.returncode != 0
    assert "cut short" in verify.stderr, verify.stderr + verify.stdout


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_a_branch_switch_is_one_update_pass_then_idle():
    """1,000 files rewritten within a second (a `git checkout`): the watcher hands the index
    one batch, the server updates once and goes back to using no CPU."""
    base = Path(tempfile.mkdtemp(prefix="slm-branch-"))
    root = base / "project"
    files = [root / "pkg" / f"mod_{n:04d}.py" for n in range(1000)]
    for n, path in enumerate(files):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"def handler_{n}(request):\n    return request.value * {n}\n")
    home = base / "home"
    server = RawServer([*LAUNCHER, "serve", "--log-level", "debug"], home, "branch.log", **ENV)
    try:
        server.initialize({**SLM, "logLevel": "debug"}, root)  # update passes are logged at debug
        _wait_built(server)
        time.sleep(1.0)
        start = time.monotonic()
        for n, path in enumerate(files):  # the other branch
            path.write_text(f"def handler_{n}(request, user):\n    return request.value + {n}\n")
        assert time.monotonic() - start < 1.5, "this machine could not write 1,000 files in a second"
        deadline = time.monotonic() + 60
        while "index updated from disk" not in server.log.read_text():
            assert time.monotonic() < deadline, "the index never saw the branch switch"
            time.sleep(0.2)
        time.sleep(5)  # any further pass the same switch caused would have come by now
        passes = [line for line in server.log.read_text().splitlines() if "index updated from disk" in line]
        assert len(passes) == 1, passes
        assert "1000 changed" in passes[0], passes
        before = _cpu_seconds(server.proc.pid)
        time.sleep(3)
        busy = (_cpu_seconds(server.proc.pid) - before) / 3
        assert busy < 0.05, f"the server keeps {busy:.0%} of a core busy after the update"
        _answers(server, root, "after-switch")
    finally:
        server.stop()


def _first_snapshot(folder: Path, proc: subprocess.Popen[bytes], timeout: float) -> Path | None:
    """The first KV snapshot file to appear in ``folder``, polled every millisecond so
    that the caller can kill the server while llama.cpp's state is still being written."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            found = next((p for p in folder.iterdir() if p.suffix == ".kv"), None)
        except FileNotFoundError:
            found = None
        if found is not None:
            return found
        time.sleep(0.001)
    return None


@pytest.mark.model
def test_killed_while_saving_kv_states_the_next_start_serves(model_installed: Path):
    """SIGKILL the real-model server the moment a saved KV state appears on disk (a far jump
    writes the cache's state before it is overwritten), five times: the next start removes
    what the dead processes left, never reads a half-written state, and serves."""
    base = Path(tempfile.mkdtemp(prefix="slm-kvkill-"))
    home = base / "home"
    source = Path(random.__file__)  # a long file nobody here wrote
    text = source.read_text()
    lines = text.split("\n")
    far = [i for i, line in enumerate(lines) if line.startswith("    def ") and i > 200][-1]
    settings = {"model": {"path": str(model_installed)}, "index": {"enabled": False},
                "completion": {"timeoutMs": 120000, "maxTokens": 16}}
    uri = (base / "random_copy.py").as_uri()
    killed: list[int] = []
    for n in range(5):
        server = RawServer(REAL_SERVER, home, f"kv-{n}.log")
        try:
            server.initialize(settings)
            server.open_document(uri, text)
            server.ask_completion(f"near-{n}", uri, 40, len(lines[40]))
            assert server.wait([f"near-{n}"], 180) == [], server.log.read_text()[-3000:]
            server.ask_completion(f"far-{n}", uri, far, len(lines[far]))
            saved = _first_snapshot(home / "kv" / str(server.proc.pid), server.proc, 180)
            assert saved is not None, "no KV state was saved: " + server.log.read_text()[-3000:]
            server.proc.kill()
            server.proc.wait(10)
            killed.append(server.proc.pid)
        finally:
            if server.proc.poll() is None:
                server.proc.kill()
    # each start sweeps the folders of the dead ones before it: the last one's is still there
    assert (home / "kv" / str(killed[-1])).exists(), f"nothing was left to clean up: {killed}"

    server = RawServer(REAL_SERVER, home, "after.log")
    try:
        server.initialize(settings)
        server.open_document(uri, text)
        server.ask_completion("after", uri, far, len(lines[far]))
        assert server.wait(["after"], 180) == [], server.log.read_text()[-3000:]
        assert "result" in server.responses['"after"'], server.responses['"after"']
        remaining = sorted(p.name for p in (home / "kv").iterdir())
        assert remaining == [str(server.proc.pid)], f"dead processes' states left: {remaining}"
        told = server.log.read_text()
        assert "could not read a KV snapshot" not in told and "could not restore" not in told, told[-3000:]
    finally:
        server.stop()
