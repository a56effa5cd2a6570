"""The testbed's per-input speed emulation: a stage's compute lasts at least its CPU time over the quota."""
import threading
import time

import torch

from edgewise.proc import computing_threads
from edgewise.runtime import worker
from edgewise.runtime.worker import EmulatedSpeed


def spin(cpu_s: float) -> None:
    start = time.thread_time()
    while time.thread_time() - start < cpu_s:
        pass


def test_compute_lasts_at_least_its_cpu_time_over_the_quota(monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    speed = EmulatedSpeed(cpu_quota_cores=0.25)
    began, cpu, started = time.perf_counter(), time.thread_time(), speed.start()
    spin(0.02)
    speed.wait_out(began, started)
    used = time.thread_time() - cpu
    assert time.perf_counter() - began >= used / 0.25 - 1e-3


def test_without_a_quota_nothing_waits(monkeypatch):
    slept = []
    monkeypatch.setattr(worker.time, "sleep", slept.append)
    speed = EmulatedSpeed()
    began, started = time.perf_counter(), speed.start()
    spin(0.01)
    speed.wait_out(began, started)
    assert slept == []


def test_one_intra_op_thread_counts_this_threads_cpu_only(monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert computing_threads() == ()
    monkeypatch.setattr(worker.time, "process_time", lambda: 10.0)
    monkeypatch.setattr(worker.time, "thread_time", lambda: 99.0)
    assert EmulatedSpeed(cpu_quota_cores=2.0).start() == 99.0


def test_several_intra_op_threads_count_the_pools_cpu_but_not_a_thread_started_after():
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        pool = computing_threads()
    finally:
        torch.set_num_threads(threads)
    assert threading.get_native_id() in pool and len(pool) >= 2
    speed = EmulatedSpeed(cpu_quota_cores=1.0, threads=pool)
    before = speed.start()
    other = threading.Thread(target=spin, args=(0.05,))    # as gloo's or the sender's thread would
    other.start()
    other.join()
    mid = speed.start()
    spin(0.05)                                              # the computing thread itself
    after = speed.start()
    assert mid - before < 0.02
    assert after - mid >= 0.05 - 1e-3
