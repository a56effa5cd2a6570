"""What the runtime itself costs a device per input: making an input, sending and receiving a message.

A stage's compute is only part of a device's work in a pipelined run: the first device makes
(or loads) every input, and each message is packed, handed to the sender thread and pushed
through gloo, then received and unpacked at the other end. Those costs are CPU work on the
device, and on a small device they can outweigh a fast model's compute. This measures them
with the runtime's own code (`wire.pack`/`unpack`, the worker's sender thread, gloo over
loopback to a peer process) at a few message sizes, as rows for the profile database:
kind "runtime", op_class "input", "send" or "recv", bytes = message size, time per message.
`cost/runtime.py` fits a fixed plus a per-byte cost to them.

CPU time is what is counted, on one core: waiting for the peer is not the device's work, and
the peer's own CPU is its own.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from datetime import timedelta
from typing import Callable

import torch
import torch.distributed as dist

from edgewise.errors import EdgewiseError
from edgewise.hardware.profile_db import Measurement
from edgewise.hardware.profiler import Clock
from edgewise.runtime.inputs import random_input
from edgewise.runtime.launch import free_port
from edgewise.runtime.wire import WireSpec, pack, unpack

SIZES = (4 << 10, 256 << 10, 2 << 20)       # bytes per message: spans the fixed and the per-byte cost
PEER_TIMEOUT_S = 30.0
# The peer pauses before each message, so that every send and receive here waits for its other
# end as in a pipeline (gloo's waiting costs CPU too: 60 us per receive back to back, 200 us
# after a 10 ms wait, measured on the 2-core VM).
GAP_S = 0.002


def _spec(nbytes: int) -> WireSpec:
    return WireSpec(("x",), ((nbytes // 4,),), (torch.float32,))


CPU_TIME = Clock(cpu_quota_cores=1.0)


def measure(messages: int = 40, sizes: tuple[int, ...] = SIZES,
            progress: Callable[[int, int], None] = lambda done, total: None) -> list[Measurement]:
    """Rows of input, send and receive costs per message size, measured between two fresh
    processes (one process group each, whatever the caller's process has done before).

    A side that dies or never answers is a one-line EdgewiseError within about PEER_TIMEOUT_S,
    and neither outlives this call.
    """
    port = free_port()

    def start(side: str) -> subprocess.Popen:
        code = (f"from edgewise.runtime.costs import {side}; "
                f"{side}({port}, {tuple(sizes)!r}, {messages}, {PEER_TIMEOUT_S})")
        return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=errors, text=True)

    errors = tempfile.TemporaryFile("w+")      # a file, not a pipe: nobody blocks on a full one
    peer, measurer = start("_peer"), start("_measurer")
    rows: list[Measurement] = []
    try:
        for line in measurer.stdout:
            if line.startswith("row "):
                fields = json.loads(line[4:])
                rows.append(Measurement(**{**fields, "shape": tuple(tuple(x) for x in fields["shape"])}))
                progress(len(rows), 3 * len(sizes))
        for proc in (measurer, peer):
            proc.wait(timeout=PEER_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pass
    finally:
        for proc in (measurer, peer):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    errors.seek(0)
    lines = [ln for ln in errors.read().splitlines() if ln.strip()]
    errors.close()
    if measurer.returncode != 0 or peer.returncode != 0 or len(rows) != 3 * len(sizes):
        raise EdgewiseError(f"profile: measuring the runtime's costs between two processes failed "
                            f"(exits {measurer.returncode} and {peer.returncode}): "
                            f"{lines[-1] if lines else 'no output'}")
    return rows


def _measurer(port: int, sizes: tuple[int, ...], messages: int, timeout_s: float) -> None:
    """Rank 0: times its own side of every exchange; prints one `row {json}` line per measurement."""
    torch.set_num_threads(1)
    _init(0, port, timeout_s)
    try:
        for m in _exchange(messages, sizes):
            print("row " + json.dumps({**asdict(m), "shape": [list(x) for x in m.shape]}), flush=True)
    finally:
        dist.destroy_process_group()


def _exchange(messages: int, sizes: tuple[int, ...]) -> list[Measurement]:
    from edgewise.runtime.worker import SeatRecord, Sender     # the worker's own sender thread

    clock = CPU_TIME
    rows: list[Measurement] = []
    for nbytes in sizes:
        spec = _spec(nbytes)
        example = (torch.empty(spec.shapes[0]),)
        samples = [_timed(clock, lambda k=k: random_input(example, k)) for k in range(messages)]
        rows.append(_row("input", nbytes, statistics.median(samples), messages))

        x = {"x": torch.randn(spec.shapes[0])}
        sender = Sender(SeatRecord(rank=0, stage=0, device=""), torch.device("cpu"))
        dist.barrier()
        t0 = clock.now()
        for k in range(messages):
            sender.put(k, pack(spec, x), 1, None, 0.0)
        sender.close()
        rows.append(_row("send", nbytes, clock.seconds(clock.now() - t0) / messages, messages))

        dist.barrier()
        t0 = clock.now()
        for k in range(messages):
            buf = torch.empty(spec.nbytes, dtype=torch.uint8)
            dist.recv(buf, src=1, tag=k)
            unpack(spec, buf)
        rows.append(_row("recv", nbytes, clock.seconds(clock.now() - t0) / messages, messages))
    dist.barrier()
    return rows


def _timed(clock: Clock, call: Callable[[], object]) -> float:
    t0 = clock.now()
    call()
    return clock.seconds(clock.now() - t0)


def _row(what: str, nbytes: int, time_s: float, messages: int) -> Measurement:
    return Measurement(kind="runtime", op_class=what, dtype="uint8", time_s=time_s, bytes=float(nbytes),
                       shape=((nbytes,),), repeats=messages)


def _init(rank: int, port: int, timeout_s: float) -> None:
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2,
                            timeout=timedelta(seconds=timeout_s))


def _peer(port: int, sizes: tuple[int, ...], messages: int, timeout_s: float) -> None:
    """Rank 1: receives what rank 0 sends, then sends it as many messages back, each after a pause."""
    torch.set_num_threads(1)
    _init(1, port, timeout_s)
    try:
        for nbytes in sizes:
            spec = _spec(nbytes)
            dist.barrier()
            for k in range(messages):
                time.sleep(GAP_S)
                dist.recv(torch.empty(spec.nbytes, dtype=torch.uint8), src=0, tag=k)
            dist.barrier()
            payload = torch.zeros(spec.nbytes, dtype=torch.uint8)
            for k in range(messages):
                time.sleep(GAP_S)
                dist.send(payload, dst=0, tag=k)
        dist.barrier()
    finally:
        dist.destroy_process_group()
