"""Starting one worker process per device, watching them, and stopping them all cleanly.

Every worker is started exactly as `torchrun` would start it (RANK, WORLD_SIZE, MASTER_ADDR,
MASTER_PORT in its environment), so the local path and the real-device path are the same
code. The driver reads each worker's event lines; a worker that exits with an error, or a
run that makes no progress for `hang_s`, stops every process within a bounded time and
raises one line naming the device and stage. Processes are killed by process group, and
the testbed's namespaces (if any) are torn down by the caller's `finally`.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from edgewise.errors import EdgewiseError
from edgewise.plan.schema import Plan
from edgewise.runtime.topology import Seat, seats

EVENT_PREFIX = "@edgewise "


@dataclass
class Launch:
    """How to start rank r: its argv (already wrapped for a testbed device if any) and env."""
    argv_for: Callable[[Seat], list[str]]
    env_for: Callable[[Seat], dict[str, str]]
    hang_s: float = 120.0
    on_event: Callable[[Seat, dict], None] = lambda seat, ev: None


@dataclass
class _Proc:
    seat: Seat
    popen: subprocess.Popen
    last_lines: list[str] = field(default_factory=list)
    steps: int = 0


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def emit_event(**event) -> None:
    """Called in a worker: one line the driver reads (progress, readiness)."""
    print(EVENT_PREFIX + json.dumps(event), flush=True)


def run_workers(plan: Plan, launch: Launch) -> None:
    """Run every seat's worker to completion, or stop them all and raise one line."""
    procs: list[_Proc] = []
    progress = {"t": time.monotonic()}
    lock = threading.Lock()
    try:
        for seat in seats(plan):
            env = {**os.environ, **launch.env_for(seat)}
            p = subprocess.Popen(launch.argv_for(seat), env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True, start_new_session=True)
            procs.append(_Proc(seat, p))
        readers = [threading.Thread(target=_read, args=(pr, launch, progress, lock), daemon=True)
                   for pr in procs]
        for t in readers:
            t.start()
        while True:
            failed = [pr for pr in procs if pr.popen.poll() not in (None, 0)]
            if failed:
                culprit = min(failed, key=lambda pr: pr.popen.returncode >= 0)  # killed ones first
                raise EdgewiseError(f"worker for device {culprit.seat.device!r} (stage "
                                    f"{culprit.seat.stage}, rank {culprit.seat.rank}) {_why(culprit)}")
            if all(pr.popen.poll() == 0 for pr in procs):
                break
            if time.monotonic() - progress["t"] > launch.hang_s:
                stuck = _stuck(procs)
                raise EdgewiseError(f"no progress for {launch.hang_s:.0f} s: worker for device "
                                    f"{stuck.seat.device!r} (stage {stuck.seat.stage}, rank "
                                    f"{stuck.seat.rank}) is stuck")
            time.sleep(0.05)
        for t in readers:
            t.join(timeout=5)
    finally:
        for pr in procs:
            _kill_group(pr.popen)


def _read(pr: _Proc, launch: Launch, progress: dict, lock: threading.Lock) -> None:
    for line in pr.popen.stdout:
        line = line.rstrip("\n")
        with lock:
            progress["t"] = time.monotonic()
        if line.startswith(EVENT_PREFIX):
            event = json.loads(line[len(EVENT_PREFIX):])
            if event.get("ev") == "step":
                pr.steps = int(event.get("done", pr.steps + 1))
            launch.on_event(pr.seat, event)
        elif line.strip():
            pr.last_lines = (pr.last_lines + [line])[-20:]


def _why(pr: _Proc) -> str:
    rc = pr.popen.returncode
    if rc < 0:
        return f"was killed by signal {signal.Signals(-rc).name}"
    errors = [ln for ln in pr.last_lines if "Error" in ln or "error" in ln]
    return f"failed (exit {rc}): {(errors or pr.last_lines or ['no output'])[-1].strip()[:300]}"


def _stuck(procs: list[_Proc]) -> _Proc:
    """The stage where the stream stopped: a stopped process if any, else the first stage that
    fell behind its upstream (upstream stages run ahead until their send queues fill)."""
    for pr in procs:
        if _state(pr.popen.pid) in ("T", "t"):
            return pr
    by_stage: dict[int, list[_Proc]] = {}
    for pr in procs:
        by_stage.setdefault(pr.seat.stage, []).append(pr)
    counts = [sum(p.steps for p in by_stage[s]) for s in sorted(by_stage)]
    for s in range(1, len(counts)):
        if counts[s] < counts[s - 1]:
            return min(by_stage[s], key=lambda p: p.steps)
    return min(by_stage[0], key=lambda p: p.steps)


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return ""


def _kill_group(p: subprocess.Popen) -> None:
    if p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass
