"""How much slower an emulated device computes while the rest of the fleet is busy.

The testbed's devices share this host's cores, caches and memory bus, so a device computes
slower in a run, with the others busy, than when it was profiled alone. Measured on the 2-core
VM, mobilenet_v2 on an emulated Pi of pi-fleet: 59-62 ms a forward with the fleet idle, 64-69
with the Pi sharing its core busy, 62-66 with the two on the other core busy, 69-70 with all
three, and 69-73 ms a step in pipelined runs. A real fleet shares nothing of the kind; this is
the emulation's own error, measured so that predictions for the testbed can count it.

The probe times each of the model's ops in its place in the forward, inside one device and by
its clock (CPU time over its quota, as the profiler times ops), in rounds: once with every
other device stopped and once with each of them running the same model in a loop under its own
quota. Ops differ: resnet18's last two stages (layer4's weights alone are 34 MB) on an
emulated Pi of edge-fleet: 86-94 ms a pass quiet and 104-108 crowded (1.17x), the whole model
196-209 and 220-232 (1.11x). `crowd_cost_model` then slows each measured op by its
crowded-to-quiet ratio in proportion to how busy the rest of the fleet is in the simulated run
(the others' CPU use over their quotas).
"""
from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import threading
from dataclasses import dataclass, replace

import torch

from edgewise.cost.roofline import CostModel
from edgewise.errors import EdgewiseError
from edgewise.graph.opgraph import OpGraph
from edgewise.hardware.profiler import Clock, op_medians_s
from edgewise.plan.schema import Plan
from edgewise.proc import computing_threads, steady_allocations
from edgewise.testbed import netns
from edgewise.testbed.layout import Layout

ROUNDS = 3              # quiet and crowded alternate, so that the host's drift falls on both
REPEATS = 5             # passes per measurement, each op timed once a pass
TIMEOUT_S = 900.0       # the whole probe, at most: resnet18 on an emulated Pi of edge-fleet takes about 40 s


@dataclass(frozen=True)
class Crowding:
    """Each op's time inside one device, by op name, in host seconds under its clock."""
    quiet_s: dict[str, float]       # the rest of the fleet stopped
    crowded_s: dict[str, float]     # every other device running the model under its quota


def measure_crowding(layout: Layout, node: str, program: str, rounds: int = ROUNDS) -> Crowding:
    """The ops of the model in `program` (a torch.export.save file) inside `node`, quiet and
    crowded, each op's time the median over `rounds` alternating measurements; a one-line
    EdgewiseError when a process fails or the probe takes longer than TIMEOUT_S. No process
    outlives this."""
    slot = layout.slot(node)
    py = [sys.executable, "-c"]
    loads = [_start(netns.launch_argv(layout, other.node, [*py, _call("_load", program, other.threads)]))
             for other in layout.slots if other.node != node]
    measurer = _start(netns.launch_argv(layout, node, [*py, _call("_measure", program, slot.threads,
                                                                  slot.cpu_quota_cores)]))
    procs = [measurer, *loads]
    found: dict[str, list[dict[str, float]]] = {"quiet": [], "crowded": []}
    expired = threading.Event()

    def expire() -> None:       # a hung process ends the probe: killed, its output ends
        expired.set()
        for p in procs:
            p.kill()
    watchdog = threading.Timer(TIMEOUT_S, expire)
    watchdog.start()
    try:
        for p in procs:      # each has its model loaded and one forward behind it
            _expect(p, "ready")
        for _ in range(rounds):
            for state, sig in (("quiet", signal.SIGSTOP), ("crowded", signal.SIGCONT)):
                for p in loads:
                    os.killpg(p.pid, sig)
                measurer.stdin.write(state + "\n")
                measurer.stdin.flush()
                found[state].append(json.loads(_expect(measurer, "times")))
    except EdgewiseError:
        if expired.is_set():
            raise EdgewiseError(f"profile: measuring how a busy fleet slows {node!r} took over {TIMEOUT_S:g} s; "
                                f"stopped") from None
        raise
    finally:
        watchdog.cancel()
        for p in procs:
            _stop(p)
    return Crowding(**{f"{state}_s": {op: statistics.median(r[op] for r in rs) for op in rs[0]}
                       for state, rs in found.items()})


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


def _model(program: str, threads: int) -> tuple[torch.fx.GraphModule, tuple]:
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
    """The measurer: for each line read, each op's median time under the device's clock."""
    cpu = torch.device("cpu")
    gm, example = _model(program, threads)      # the exported graph: node names as in the OpGraph
    clock = Clock(quota_cores, computing_threads())      # as `profile` clocks a device of several threads
    with torch.inference_mode():
        gm(*example)
    print("ready", flush=True)
    for _ in sys.stdin:
        print("times " + json.dumps(op_medians_s(gm, example, cpu, REPEATS, clock)), flush=True)


def crowd_cost_model(cost: CostModel, plan: Plan, graph: OpGraph, layout: Layout,
                     slowdown: dict[str, dict[str, float]], inputs: int = 64) -> CostModel:
    """`cost` with each measured op of a device type slowed by its ratio in `slowdown` (crowded
    over quiet, by catalogue device name, then op name) times how busy the rest of the fleet is
    in `plan`'s simulated run: a device type's share is the mean over its devices, weighted by
    how busy each one is."""
    from edgewise.sim.pipeline import simulate
    timeline = simulate(plan, graph, cost, inputs).timeline
    span = (max(s.end_s for s in timeline) - min(s.start_s for s in timeline)) if timeline else 0.0
    quota = {s.node: s.cpu_quota_cores for s in layout.slots}
    busy = {n: sum(s.end_s - s.start_s for s in timeline if s.resource == f"device:{n}") / (span or 1.0)
            for n in quota}
    share: dict[str, float] = {}
    for kind in slowdown:
        nodes = [n.name for n in plan.cluster.nodes if n.device.name == kind and busy[n.name] > 0]
        if nodes:
            crowd = {n: sum(quota[o] * busy[o] for o in quota if o != n) / sum(quota[o] for o in quota if o != n)
                     for n in nodes}
            share[kind] = min(1.0, sum(busy[n] * crowd[n] for n in nodes) / sum(busy[n] for n in nodes))
    measured = {(kind, op): t * (1 + (slowdown[kind].get(op, 1.0) - 1) * share[kind]) if kind in share else t
                for (kind, op), t in cost.measured_s.items()}
    return replace(cost, measured_s=measured)
