"""This process's memory (its resident size, read the one way the runtime and the offload engine
share, and the allocator settings that keep a loop of forward passes steady), the CPU time of
the threads that compute in it, and waits that end when they are due."""
import ctypes
import os
import time

import torch

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3     # glibc's mallopt parameters (malloc.h)
PR_SET_TIMERSLACK = 29                          # prctl's option (linux/prctl.h)
# A sleep ends this long before it is due and the rest is spun: a woken thread runs some tens of
# µs after its timer fires (on the 2-core VM a 200 µs sleep ended 35 to 42 µs late, median, with
# no timer slack and 85 µs with Linux's default 50 µs), which a device that sleeps out every
# step would add to every step.
SPIN_S = 50e-6


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def steady_allocations(mmap_bytes: int = 32 << 20, trim_bytes: int = 128 << 20) -> None:
    """Keep freed activations in the heap for the next pass instead of handing them back to the OS.

    glibc serves blocks over its mmap threshold with fresh pages and returns freed heap tops over
    its trim threshold, and it raises both as a process frees large blocks; so each forward pass
    pays page faults that depend on what the process freed before. Measured on the 2-core VM:
    the same unet forward took 18.0 to 21.6 ms of CPU in different processes, with 135k to 217k
    page faults; with the thresholds fixed, 18.3 to 19.2 ms. Fixing them in every process that
    times or serves a model (the profiler, workers) keeps what was profiled and what runs alike.
    It does not remove every fault: a quick check still saw a freed 8 MiB tensor's successor
    fault all its pages in.
    Without glibc (musl, macOS) this does nothing.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.mallopt(M_MMAP_THRESHOLD, mmap_bytes)
    libc.mallopt(M_TRIM_THRESHOLD, trim_bytes)


def computing_threads() -> tuple[int, ...]:
    """This process's threads once its intra-op pool is up (none with one intra-op thread, or
    off Linux): call it before any thread that does not compute (gloo's, a sender's) starts."""
    if torch.get_num_threads() == 1 or not os.path.isdir("/proc/self/task"):
        return ()
    with torch.inference_mode():
        x = torch.ones(256, 256)
        x @ x                          # starts the pool's threads
    return tuple(sorted(int(tid) for tid in os.listdir("/proc/self/task")))


def threads_cpu_s(tids: tuple[int, ...]) -> tuple[float, ...]:
    """Each thread's CPU time so far, read from Linux's per-thread CPU clock
    (MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED)), which reaches threads Python did not start."""
    return tuple(time.clock_gettime(((~tid) << 3) | 6) for tid in tids)


def exact_timers() -> None:
    """Let this thread's sleeps, and those of threads it starts later, end when due rather than
    up to Linux's default 50 µs timer slack late. Off Linux this does nothing."""
    try:
        ctypes.CDLL(None).prctl(PR_SET_TIMERSLACK, 1, 0, 0, 0)
    except (OSError, AttributeError):
        return


def sleep_until(due: float) -> None:
    """Return at `due` (a time.perf_counter() reading), sleeping for all but the last SPIN_S."""
    if (left := due - time.perf_counter()) > SPIN_S:
        time.sleep(left - SPIN_S)
    while time.perf_counter() < due:
        pass
