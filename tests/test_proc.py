"""Allocator settings: with steady_allocations, a stage-sized block comes from the heap, where a
freed one is kept for the next input, rather than from pages mapped for it and unmapped after."""
import subprocess
import sys
import time

import pytest

# A fresh process asks glibc for 4 MiB (an activation's size) and prints how many blocks glibc
# then holds as mappings of their own (mallinfo2's hblks) beyond those it held before.
MAPPED = """
import ctypes, sys
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                               "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype, libc.malloc.restype = Info, ctypes.c_void_p
if sys.argv[1] == "steady":
    from edgewise.proc import steady_allocations
    steady_allocations()
before = libc.mallinfo2().hblks
block = libc.malloc(4 << 20)
print(libc.mallinfo2().hblks - before)
"""


def mapped_blocks(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", MAPPED, mode], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return int(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_steady_allocations_serve_activation_sized_blocks_from_the_heap():
    assert mapped_blocks("default") == 1    # over glibc's first threshold (128 KiB): a mapping of its own
    assert mapped_blocks("steady") == 0


def test_sleep_until_sleeps_all_but_the_spin_and_never_returns_early(monkeypatch):
    from edgewise import proc
    slept = []
    monkeypatch.setattr(proc.time, "sleep", lambda s: slept.append(s))   # the spin then waits it all out
    due = time.perf_counter() + 0.02
    proc.sleep_until(due)
    assert time.perf_counter() >= due
    assert slept and abs(slept[0] - (0.02 - proc.SPIN_S)) < 0.005
    slept.clear()
    proc.sleep_until(time.perf_counter() - 1.0)     # already due: no sleep at all
    assert slept == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux timer slack")
def test_exact_timers_drop_this_threads_timer_slack():
    code = ("import ctypes; from edgewise.proc import exact_timers, PR_SET_TIMERSLACK; exact_timers(); "
            "print(ctypes.CDLL(None).prctl(PR_SET_TIMERSLACK + 1, 0, 0, 0, 0))")   # PR_GET_TIMERSLACK
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) == 1
