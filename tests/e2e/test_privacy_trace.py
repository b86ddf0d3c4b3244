"""Privacy proven from outside the process: a whole session of the real server under strace.

Index build, completions, hover, code actions, Explain selection, search and a
settings change, all traced with ``strace -f``: every connect, bind, sendto and
sendmsg must name a loopback address (or a local socket), every file the server
creates must lie under its cache root, and every file there must be readable by
the user only. The workspace holds a file with secrets in it, which must not
appear in anything the server wrote.

Bytecode writing is off for the traced process (``PYTHONDONTWRITEBYTECODE``): the
interpreter's own ``.pyc`` cache beside installed modules is not the server's doing.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from lsprotocol import types

from .conftest import client_capabilities, inline_params, open_doc, server_env, track_status, wait_ready

pytestmark = [pytest.mark.model, pytest.mark.embedder]

TRACED = ("connect,bind,sendto,sendmsg,open,openat,creat,mkdir,mkdirat,rename,renameat,renameat2,"
          "link,linkat,symlink,symlinkat")
SECRET = "xoxb-2048-90210-a1B2c3D4e5F6"
LEAKY = f'SLACK_TOKEN = "{SECRET}"\n\n\ndef notify(text):\n    return post(SLACK_TOKEN, text)\n'


_PID = re.compile(r"^(\d+) +(.*)$")


def _merged_lines(log: Path) -> list[str]:
    """strace lines with each `<unfinished ...>` call joined to its `resumed` rest."""
    pending: dict[str, str] = {}
    out: list[str] = []
    for line in log.read_text(errors="replace").splitlines():
        prefixed = _PID.match(line)  # strace writes "PID " first when it follows forks into a file
        pid, rest = (prefixed.group(1), prefixed.group(2)) if prefixed else ("", line)
        if rest.endswith("<unfinished ...>"):
            pending[pid] = rest[: -len("<unfinished ...>")]
        elif rest.startswith("<... ") and " resumed>" in rest:
            out.append(pending.pop(pid, "") + rest.split(" resumed>", 1)[1])
        else:
            out.append(rest)
    return out


_INET = re.compile(r'inet_addr\("([^"]+)"\)|inet_pton\(AF_INET6, "([^"]+)"')
_PATH = re.compile(r'"((?:[^"\\]|\\.)*)"')


def network_addresses(lines: list[str]) -> list[tuple[str, str]]:
    """(call, address) of every IP address a socket call named."""
    found = []
    for line in lines:
        call = line.split("(", 1)[0]
        if call in ("connect", "bind", "sendto", "sendmsg"):
            for v4, v6 in _INET.findall(line):
                found.append((call, v4 or v6))
    return found


def is_loopback(address: str) -> bool:
    return address.startswith("127.") or address in ("::1", "::ffff:127.0.0.1")


def created_paths(lines: list[str], cwd: Path) -> set[Path]:
    """Files and folders the traced processes created (successful calls only)."""
    made: set[Path] = set()
    for line in lines:
        call = line.split("(", 1)[0]
        if not re.search(r"\) = \d+", line):
            continue  # failed (= -1 ...) or never returned
        paths = _PATH.findall(line)
        if not paths:
            continue
        if call in ("open", "openat", "creat") and (call == "creat" or "O_CREAT" in line):
            target = paths[0]
        elif call in ("mkdir", "mkdirat"):
            target = paths[0]
        elif call.startswith(("rename", "link", "symlink")):
            target = paths[-1]
        else:
            continue
        path = Path(target)
        made.add(path if path.is_absolute() else cwd / path)
    return made


def strace_command(strace: str, workdir: Path) -> list[str]:
    """strace's options for this machine, checked on a tiny traced child first.

    ``--seccomp-bpf`` makes tracing cheap (only the named calls stop the tracee), but a
    kernel or sandbox that does not deliver seccomp trace events to ptrace lets the
    traced process run unseen, and the trace comes back empty. The probe opens a
    known file from a child process; the first option set whose trace shows that open is used.
    """
    marker = workdir / "probe-marker"
    marker.write_text("")
    tried = []
    for fast in (["--seccomp-bpf"], []):
        command = [strace, "-f", "-qq", *fast, "-e", f"trace={TRACED}", "-e", "signal=none"]
        probe_log = workdir / "probe.log"
        child = f"open({str(marker)!r}).close()"  # opened by a child: -f must follow it
        done = subprocess.run([*command, "-o", str(probe_log), sys.executable, "-S", "-c",
                               f"import subprocess, sys; subprocess.run([sys.executable, '-S', "
                               f"'-c', {child!r}], check=True)"],
                              capture_output=True, text=True, timeout=60)
        seen = probe_log.read_text(errors="replace") if probe_log.exists() else ""
        if done.returncode == 0 and str(marker) in seen:
            return command
        tried.append(f"{' '.join(fast) or 'plain'}: exit {done.returncode}, "
                     f"stderr {done.stderr.strip()[:300]!r}, trace {seen[:300]!r}")
    pytest.fail("strace cannot trace a child process here; " + "; ".join(tried))


@pytest.mark.asyncio
async def test_a_traced_session_stays_on_loopback_and_inside_its_cache(model_installed: Path):
    from pytest_lsp import make_test_lsp_client

    strace = shutil.which("strace")
    if strace is None:  # pragma: no cover - make test installs it (Makefile, apt)
        pytest.fail("strace is needed for this test (apt install strace)")
    import pathspec

    base = Path(tempfile.mkdtemp(prefix="slm-trace-"))
    home, workspace, log = base / "home", base / "ws" / "project", base / "strace.log"
    home.mkdir(mode=0o700)
    shutil.copytree(Path(pathspec.__file__).parent, workspace / "pathspec",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (workspace / "pathspec" / "alerts.py").write_text(LEAKY)
    before = {p: p.stat().st_mtime_ns for p in workspace.rglob("*")}

    settings = {"model": {"path": str(model_installed)}, "index": {"context": "both"},
                "completion": {"timeoutMs": 120000}, "explain": {"maxTokens": 48}}
    client = make_test_lsp_client()
    states = track_status(client)
    command = strace_command(strace, base)
    await client.start_io(*command, "-o", str(log),
                          sys.executable, "-m", "slm_lsp", "serve", "--log-level", "info",
                          env=server_env(SLM_LSP_HOME=str(home), PYTHONDONTWRITEBYTECODE="1"),
                          cwd=str(workspace))
    try:
        client.set_configuration(settings, section="slm")
        caps = client_capabilities()
        caps.text_document.hover = types.HoverClientCapabilities(  # type: ignore[union-attr]
            content_format=[types.MarkupKind.Markdown])
        await client.initialize_session(types.InitializeParams(
            capabilities=caps, root_uri=workspace.as_uri(),
            initialization_options={"slm": settings}))
        await wait_ready(states, timeout=180)
        deadline = time.monotonic() + 600
        while not any(isinstance(v, types.WorkDoneProgressEnd)
                      for values in client.progress_reports.values() for v in values):
            assert time.monotonic() < deadline, "the index build did not finish"
            await asyncio.sleep(0.5)

        path = workspace / "pathspec" / "util.py"
        text = path.read_text()
        open_doc(client, path.as_uri(), text)
        row = next(i for i, x in enumerate(text.split("\n")) if x.startswith("def normalize_file("))
        new = (workspace / "pathspec" / "clean.py").as_uri()  # open in the editor, never saved
        open_doc(client, new, "from .util import normalize_file\n\n\ndef clean(path):\n    return \n")
        result = await client.text_document_inline_completion_async(inline_params(new, 4, 11))
        assert result is not None
        hover = await client.text_document_hover_async(types.HoverParams(
            text_document=types.TextDocumentIdentifier(uri=path.as_uri()),
            position=types.Position(line=row, character=6)))
        assert hover is not None
        actions = await client.text_document_code_action_async(types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=path.as_uri()),
            range=types.Range(start=types.Position(line=row, character=0),
                              end=types.Position(line=row + 8, character=0)),
            context=types.CodeActionContext(diagnostics=[])))
        command = next(a for a in actions or [] if isinstance(a, types.Command))
        await client.workspace_execute_command_async(types.ExecuteCommandParams(
            command=command.command, arguments=command.arguments))
        found = await client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="slm.search", arguments=["slack token notify", 5]))
        assert found["results"]
        client.set_configuration({**settings, "completion": {"timeoutMs": 60000, "maxTokens": 32}},
                                 section="slm")
        client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=None))
        await asyncio.sleep(2)
        result = await client.text_document_inline_completion_async(inline_params(new, 4, 11))
        assert result is not None
    finally:
        await client.shutdown_session()
        await client.stop()

    lines = _merged_lines(log)
    assert any(line.startswith("openat(") for line in lines), \
        f"the trace recorded nothing: {log.read_text(errors='replace')[:2000]!r}"
    outside = [(c, a) for c, a in network_addresses(lines) if not is_loopback(a)]
    assert outside == [], f"non-loopback socket calls: {outside}"

    created = created_paths(lines, workspace)
    assert any(p.is_relative_to(home) for p in created), "the trace saw no file being written"
    strays = sorted(str(p) for p in created if not p.is_relative_to(home)
                    and not str(p).startswith(("/dev/null", "/dev/shm/", "/dev/tty")))
    assert strays == [], f"files created outside the cache root {home}: {strays}"
    assert {p: p.stat().st_mtime_ns for p in workspace.rglob("*")} == before  # nothing touched

    readable = [str(p) for p in home.rglob("*") if p.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO)]
    assert readable == [], f"cache files others can read: {readable[:10]}"
    leaked = [str(p) for p in home.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
    assert leaked == [], f"the secret was written to {leaked}"
