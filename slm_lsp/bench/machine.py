"""Facts about the run recorded with its results: machine, load, commit, model."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any

BUSY_LOAD = 0.5
"""A 1-minute load average at or above this before the run means other work was running."""


def load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def machine() -> dict[str, Any]:
    """Cores, CPU, memory, OS and the load average now (the start of the run)."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        usable = os.cpu_count() or 1
    memory = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return {"cores": os.cpu_count(), "usable_cores": usable, "cpu_model": cpu_model(),
            "memory_gib": memory, "python": platform.python_version(),
            "os": f"{platform.system()} {platform.release()}", "load_start": load_average()}


def commit(project: Path) -> dict[str, Any]:
    """The project's commit and whether the working tree differs from it."""
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=project, capture_output=True, text=True,
                                 timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    status = git("status", "--porcelain", "--untracked-files=no")
    return {"hash": git("rev-parse", "HEAD"), "dirty": bool(status) if status is not None else None}


def proc_status(pid: int | str = "self") -> dict[str, int]:
    """The numeric fields of ``/proc/PID/status`` (sizes in kB): VmRSS, VmHWM, Threads...;
    empty when the process is gone or this is not Linux."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    fields: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        first = value.split()[:1]
        if first and first[0].isdigit():
            fields[key] = int(first[0])
    return fields


def mib(kib: int | None) -> float | None:
    """kB (as /proc gives them) in MiB, to 0.1; None stays None."""
    return None if kib is None else round(kib / 1024, 1)


def machine_line(result: dict[str, Any]) -> str:
    """A report's line on where a result was measured: CPU, cores, the load at both ends."""
    info = result["machine"]
    return (f"- machine: {info['cpu_model']}, {info['cores']} cores, load average at the "
            f"start {info['load_start']}, at the end {result['load_end']}")


def commit_text(result: dict[str, Any]) -> str:
    """The result's commit, marked when the working tree differed from it."""
    return f"{result['commit']['hash']}{' (dirty)' if result['commit']['dirty'] else ''}"


def command_block(*commands: str) -> list[str]:
    """The commands that wrote a result, as a report's closing code block."""
    return ["```", *commands, "```", ""]


def model_facts(name: str, path: str) -> dict[str, Any]:
    """The model file the servers load: name, path, size and SHA-256 prefix."""
    import hashlib

    from ..models import ModelError, resolve_model_path

    try:
        file = resolve_model_path(name, path)
    except ModelError as exc:
        return {"name": name or path, "error": str(exc)}
    digest = hashlib.sha256()
    with file.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return {"name": name if not path else file.name, "file": file.name,
            "size_bytes": file.stat().st_size, "sha256_prefix": digest.hexdigest()[:16]}


def is_busy(machine_info: dict[str, Any]) -> bool:
    """True when other work was running as the run started."""
    load = machine_info.get("load_start")
    return bool(load and load[0] >= BUSY_LOAD)


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo, else what platform reports."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
