"""`return_large_frees` gives freed embedding-sized buffers back to the system, and `heap`
and `usage` report what a process holds (glibc only)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="mallopt thresholds are glibc's")

SCRIPT = """
import sys
from slm_lsp.memory import return_large_frees
if sys.argv[1] == "on":
    assert return_large_frees()

def rss_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) // 1024

big = bytearray(4 << 20)
del big  # glibc's dynamic threshold now lies above the 2 MiB buffers below
keep, buffers = [], []
for _ in range(100):
    buffers.append(bytearray(2 << 20))
    keep.append(bytearray(64 << 10))  # small, long-lived: the heap cannot shrink past it
before = rss_mib()
buffers.clear()
print(before, rss_mib())
"""


def resident_before_and_after_freeing(mode: str) -> tuple[int, int]:
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True,
                         text=True, timeout=60, check=True)
    before, after = out.stdout.split()
    return int(before), int(after)


def test_freed_buffers_of_a_mebibyte_and_more_leave_the_process():
    before, after = resident_before_and_after_freeing("off")
    assert before - after < 50, "glibc's default keeps freed 2 MiB buffers in the heap"
    before, after = resident_before_and_after_freeing("on")
    assert before - after > 150, (before, after)


HEAP_SCRIPT = """
import threading
from slm_lsp.memory import heap, usage
before = heap()
held = []
together = threading.Barrier(8)
def allocate():  # eight threads alive at once: each with an arena of its own
    together.wait()
    held.extend(bytearray(100_000) for _ in range(50))  # malloc'd, under the mmap threshold
    together.wait()
threads = [threading.Thread(target=allocate) for _ in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
after, now = heap(), usage()
print(after["in_use"] - before["in_use"], now["rss"], now["anon"] + now["file"], now["heap"])
"""


def test_heap_and_usage_report_what_the_process_allocated() -> None:
    out = subprocess.run([sys.executable, "-c", HEAP_SCRIPT], capture_output=True, text=True,
                         timeout=60, check=True).stdout.split(maxsplit=3)
    grown, rss, parts = float(out[0]), float(out[1]), float(out[2])
    assert 30 <= grown <= 45  # 400 buffers of 100 kB in all threads' arenas: 38 MiB
    assert abs(rss - parts) <= 1.0 and "'free'" in out[3] and "'mapped'" in out[3]


def test_usage_counts_the_blocks_python_holds() -> None:
    from slm_lsp.memory import usage

    before = usage()["python_blocks"]
    held = [[n] for n in range(100_000)]  # a list object per element, each a block
    assert usage()["python_blocks"] - before >= 100_000
    del held


def test_the_idle_trimmer_trims_once_per_burst_and_never_while_busy() -> None:
    import threading
    import time

    from slm_lsp.memory import IdleTrimmer

    busy = threading.Event()
    calls: list[float] = []
    trimmer = IdleTrimmer(idle_s=0.2, busy=busy.is_set, release=lambda: bool(calls.append(1)))
    time.sleep(0.4)
    assert calls == [] and trimmer._thread is None  # nothing happened: no thread, no trim
    for _ in range(5):  # a burst of requests, each ending before the next
        trimmer.touch()
        time.sleep(0.05)
    assert calls == []  # not before idle_s has passed since the last one
    deadline = time.monotonic() + 5
    while not calls and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.5)
    assert len(calls) == 1 == trimmer.trims
    busy.set()  # a request runs (an explanation, say) long after the last touch
    trimmer.touch()
    time.sleep(0.6)
    assert len(calls) == 1
    busy.clear()
    deadline = time.monotonic() + 5
    while len(calls) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(calls) == 2


def test_a_failing_trim_does_not_end_the_trimmer() -> None:
    import time

    from slm_lsp.memory import IdleTrimmer

    calls: list[int] = []

    def broken() -> bool:
        calls.append(1)
        raise OSError("no")

    trimmer = IdleTrimmer(idle_s=0.05, release=broken)
    for expected in (1, 2):
        trimmer.touch()
        deadline = time.monotonic() + 5
        while len(calls) < expected and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(calls) == expected
