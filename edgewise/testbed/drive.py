"""Running a plan's workers, inside the emulated fleet when asked and possible, else over loopback.

The workers are the `edgewise worker` command (what `torchrun` starts on real devices), so
this is the same code path as a real deployment with the fleet swapped for namespaces. The
testbed is always torn down, whatever stops the run.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from edgewise.cost.roofline import op_class
from edgewise.errors import EdgewiseError
from edgewise.files import write_atomic
from edgewise.hardware import profiler
from edgewise.hardware.cluster import Cluster
from edgewise.hardware.profile_db import ProfileDB, default_db_path
from edgewise.plan.report import Report, Span
from edgewise.plan.schema import Plan
from edgewise.runtime import costs
from edgewise.runtime.launch import Launch, free_port, run_workers
from edgewise.runtime.result import read_result
from edgewise.runtime.topology import Seat, seats
from edgewise.runtime.worker import check_device
from edgewise.testbed import netns
from edgewise.testbed.commands import can_emulate
from edgewise.testbed.host import host_core_flops
from edgewise.testbed.layout import Layout, plan_layout

GLOO_PORT = 29500      # free in the namespaces edgewise just made


@dataclass
class Ran:
    """What a run measured."""
    report: Report
    on_testbed: bool         # False: over loopback, unshaped
    timeline: list[Span]     # what each device computed and sent, when (runtime/measure.py)


def build_testbed(cluster: Cluster) -> Layout:
    """Bring the fleet up for `cluster`, measuring this host first if it never was."""
    flops = host_core_flops()
    if flops is None:
        measure_host()
        flops = host_core_flops()
    layout = plan_layout(cluster, flops, os.cpu_count() or 1)
    netns.up(cluster, layout)
    return layout


def measure_host() -> None:
    """The quick microbenchmark sweep of `edgewise profile --quick` and the runtime's own costs,
    one thread, into the profile database."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)    # the testbed gives each device whole cores or slices of one
    try:
        run, rows = profiler.profile_device(torch.device("cpu"), op_class, quick=True, repeats=5,
                                            command="edgewise testbed (host speed, 1 thread)")
        rows += costs.measure()
    finally:
        torch.set_num_threads(threads)
    with ProfileDB(default_db_path()) as db:
        db.record(run, rows)


def check_run_device(plan: Plan, device: str, testbed: bool) -> None:
    """One line, before any process starts, when the run cannot use `device` here: every
    process of a local run is on this host, so `cuda` needs a GPU for each."""
    if testbed and device != "cpu":
        raise EdgewiseError(f"--device {device} with --testbed: the emulated fleet is CPUs (namespaces and CPU "
                            f"quotas); drop --testbed to run on this machine's GPUs, or use --device cpu")
    check_device(device, len(seats(plan)))


def run_plan(plan: Plan, plan_file: str, inputs: str, n: int, *, warmup: int = 2, testbed: bool = False,
             device: str = "cpu", outputs: str | None = None, hang_timeout_s: float = 120.0,
             on_progress: Callable[[int], None] = lambda done: None,
             on_note: Callable[[str], None] = lambda note: None) -> Ran:
    """Run `n` inputs through the plan on `device` (cpu, or cuda: one GPU per process), writing
    the model's outputs to `outputs` if given."""
    check_run_device(plan, device, testbed)
    layout = None
    if testbed:
        reason = can_emulate()
        if reason:
            on_note(reason)
        else:
            layout = build_testbed(plan.cluster)
            on_note(f"on the emulated fleet, time dilation {layout.dilation:.2f}x (figures in the cluster's own time)")
    result_dir = Path(tempfile.mkdtemp(prefix="edgewise-run-"))
    try:
        _start(plan, plan_file, inputs, n, warmup, layout, device, hang_timeout_s, on_progress, result_dir)
        files = read_result(result_dir)
        if outputs:
            write_atomic(outputs, files.outputs.read_bytes())
        return Ran(files.report, layout is not None, files.timeline)
    finally:
        shutil.rmtree(result_dir, ignore_errors=True)
        if layout is not None:
            netns.down()


def _start(plan: Plan, plan_file: str, inputs: str, n: int, warmup: int, layout: Layout | None, device: str,
           hang_timeout_s: float, on_progress: Callable[[int], None], result_dir: Path) -> None:
    world = len(seats(plan))
    dilation = layout.dilation if layout else 1.0
    master = layout.slot(seats(plan)[0].device).address if layout else "127.0.0.1"
    port = GLOO_PORT if layout else free_port()
    local_threads = max(1, (os.cpu_count() or 1) // world)
    last = len(plan.stages) - 1

    def argv(seat: Seat) -> list[str]:
        threads = layout.slot(seat.device).threads if layout else local_threads
        cmd = [sys.executable, "-m", "edgewise", "worker", plan_file, "--inputs", inputs, "--count", str(n),
               "--warmup", str(warmup), "--result", str(result_dir), "--threads", str(threads),
               "--time-dilation", str(dilation), "--emulate-latency", "--device", device]
        if not layout:
            return cmd
        cmd += ["--cpu-quota", str(layout.slot(seat.device).cpu_quota_cores)]
        return netns.launch_argv(layout, seat.device, cmd)

    def env(seat: Seat) -> dict[str, str]:
        # every local process is on this host (its rank is its local rank, which picks its GPU);
        # each testbed device is a host of its own
        return {"RANK": str(seat.rank), "WORLD_SIZE": str(world), "LOCAL_RANK": "0" if layout else str(seat.rank),
                "MASTER_ADDR": master, "MASTER_PORT": str(port),
                "GLOO_SOCKET_IFNAME": "eth0" if layout else "lo"}

    done: dict[int, int] = {}       # inputs each last-stage worker has finished

    def on_event(seat: Seat, ev: dict) -> None:
        if ev.get("ev") == "step" and seat.stage == last:
            done[seat.rank] = int(ev.get("done", 0))
            on_progress(sum(done.values()))

    # A device emulated at a fraction of a core also starts (imports, export) that much slower.
    slowest = min((s.cpu_quota_cores for s in layout.slots), default=1.0) if layout else 1.0
    run_workers(plan, Launch(argv_for=argv, env_for=env, hang_s=hang_timeout_s / min(1.0, slowest),
                             on_event=on_event))
