"""One scratch directory per test run for every temporary file the tests make.

The end-to-end tests make their workspaces, cache homes and model copies with `tempfile`
(some at import, before any fixture runs), hundreds of megabytes per run. They all go
under one directory, removed when the run passes and kept (its path printed) when a test
failed, so that a developer's /tmp does not fill up run after run.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest

_SCRATCH: dict[str, Path] = {}


def pytest_configure(config: pytest.Config) -> None:
    scratch = Path(tempfile.mkdtemp(prefix="slm-tests-"))
    _SCRATCH["dir"] = scratch
    tempfile.tempdir = str(scratch)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if session.testsfailed:
        _SCRATCH["kept"] = _SCRATCH["dir"]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if "kept" in _SCRATCH:
        terminalreporter.write_line(f"temporary files of this run kept in {_SCRATCH['kept']}")


def pytest_unconfigure(config: pytest.Config) -> None:
    tempfile.tempdir = None
    scratch = _SCRATCH.pop("dir", None)
    if scratch is not None and "kept" not in _SCRATCH:
        shutil.rmtree(scratch, ignore_errors=True)
