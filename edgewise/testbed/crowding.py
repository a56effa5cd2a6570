"""How much slower an emulated device computes while the rest of the fleet is busy.

The testbed's devices share this host's cores, caches and memory bus, so a device computes
slower in a run, with the others busy, than when it was profiled alone. Measured on the 2-core
VM, mobilenet_v2 on an emulated Pi of pi-fleet: 59-62 ms a forward with the fleet idle, 64-69
with the Pi sharing its core busy, 62-66 with the two on the other core busy, 69-70 with all
three, and 69-73 ms a step in pipelined runs. A real fleet shares nothing of the kind; this is
the emulation's own error, measured so that predictions for the testbed can count it.

The probe runs the model's forward back to back inside one device, timed by its clock (CPU time
over its quota, as the profiler times it), in rounds: once with every other device stopped and
once with each of them running the same model in a loop under its own quota. `crowd_cost_model`
then slows each device type's measured ops by the crowded-to-quiet ratio in proportion to how
busy the rest of the fleet is in the simulated run (the others' CPU use over their quotas).
"""
from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
from dataclasses import dataclass, replace

import torch

from edgewise.cost.roofline import CostModel
from edgewise.errors import EdgewiseError
from edgewise.graph.opgraph import OpGraph
from edgewise.hardware.profiler import Clock, median_time_s
from edgewise.plan.schema import Plan
from edgewise.proc import steady_allocations
from edgewise.testbed import netns
from edgewise.testbed.layout import Layout

ROUNDS = 3              # quiet and crowded alternate, so that the host's drift falls on both
REPEATS = 5             # forwards per measurement, at least
SPAN_S = 1.0            # host seconds a measurement spans, at least
READY_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Crowding:
    """The model's forward inside one device, in host seconds under its clock."""
    quiet_s: float       # the rest of the fleet stopped
    crowded_s: float     # every other device running the model under its quota

    @property
    def slowdown(self) -> float:
        return self.crowded_s / self.quiet_s


def measure_crowding(layout: Layout, node: str, program: str, rounds: int = ROUNDS) -> Crowding:
    """The forward of the model in `program` (a torch.export.save file) inside `node`, quiet and
    crowded, each the median over `rounds` alternating measurements; a one-line EdgewiseError
    when a process fails. No process outlives this."""
    slot = layout.slot(node)
    py = [sys.executable, "-c"]
    loads = [_start(netns.launch_argv(layout, other.node, [*py, _call("_load", program, other.threads)]))
             for other in layout.slots if other.node != node]
    measurer = _start(netns.launch_argv(layout, node, [*py, _call("_measure", program, slot.threads,
                                                                  slot.cpu_quota_cores)]))
    procs = [measurer, *loads]
    found: dict[str, list[float]] = {"quiet": [], "crowded": []}
    try:
        for p in procs:      # each has its model loaded and one forward behind it
            _expect(p, "ready")
        for _ in range(rounds):
            for state, sig in (("quiet", signal.SIGSTOP), ("crowded", signal.SIGCONT)):
                for p in loads:
                    os.killpg(p.pid, sig)
                measurer.stdin.write(state + "\n")
                measurer.stdin.flush()
                found[state].append(float(_expect(measurer, "time")))
    finally:
        for p in procs:
            _stop(p)
    return Crowding(quiet_s=statistics.median(found["quiet"]), crowded_s=statistics.median(found["crowded"]))


def _call(entry: str, *args) -> str:
    return f"from edgewise.testbed.crowding import {entry}; {entry}(*{json.dumps(args)})"


def _start(argv: list[str]) -> subprocess.Popen:
    return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def _expect(p: subprocess.Popen, word: str) -> str:
    """The rest of the next line `p` prints, which must start with `word`."""
    line = p.stdout.readline()
    if not line.startswith(word):
        p.kill()
        lines = p.stderr.read().strip().splitlines() or ["no output"]
        raise EdgewiseError(f"profile: measuring how a busy fleet slows a device failed: {lines[-1]}")
    return line[len(word):].strip()


def _stop(p: subprocess.Popen) -> None:
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    p.wait()


def _model(program: str, threads: int) -> tuple[torch.nn.Module, tuple]:
    steady_allocations()     # as in a worker
    torch.set_num_threads(threads)
    loaded = torch.export.load(program)
    return loaded.module(), tuple(loaded.example_inputs[0])


def _load(program: str, threads: int) -> None:
    """A busy neighbour: the model, back to back, until killed."""
    model, example = _model(program, threads)
    with torch.inference_mode():
        model(*example)
        print("ready", flush=True)
        while True:
            model(*example)


def _measure(program: str, threads: int, quota_cores: float) -> None:
    """The measurer: for each line read, the forward's median time under the device's clock."""
    model, example = _model(program, threads)
    clock = Clock(cpu_quota_cores=quota_cores)
    with torch.inference_mode():
        model(*example)
        print("ready", flush=True)
        for _ in sys.stdin:
            t = median_time_s(lambda: model(*example), torch.device("cpu"), REPEATS, clock=clock, span_s=SPAN_S)
            print(f"time {t}", flush=True)


def crowd_cost_model(cost: CostModel, plan: Plan, graph: OpGraph, layout: Layout,
                     slowdown: dict[str, float], inputs: int = 64) -> CostModel:
    """`cost` with each device type's measured ops slowed by its `slowdown` (crowded over quiet,
    by catalogue device name) times how busy the rest of the fleet is in `plan`'s simulated run:
    a device type's share is the mean over its devices, weighted by how busy each one is."""
    from edgewise.sim.pipeline import simulate
    sim = simulate(plan, graph, cost, inputs)
    ends = [s.end_s for s in sim.timeline] + [0.0]
    span = max(ends) - min([s.start_s for s in sim.timeline] + [0.0]) or 1.0
    quota = {s.node: s.cpu_quota_cores for s in layout.slots}
    busy = {n: sum(s.end_s - s.start_s for s in sim.timeline if s.resource == f"device:{n}") / span for n in quota}
    factor: dict[str, float] = {}
    for kind, ratio in slowdown.items():
        nodes = [n.name for n in plan.cluster.nodes if n.device.name == kind and busy[n.name] > 0]
        if not nodes:
            continue
        crowd = {n: sum(quota[o] * busy[o] for o in quota if o != n) / (sum(quota[o] for o in quota if o != n) or 1.0)
                 for n in nodes}
        share = sum(busy[n] * crowd[n] for n in nodes) / sum(busy[n] for n in nodes)
        factor[kind] = 1 + (ratio - 1) * min(1.0, share)
    measured = {(kind, op): t * factor.get(kind, 1.0) for (kind, op), t in cost.measured_s.items()}
    return replace(cost, measured_s=measured)
