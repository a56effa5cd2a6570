"""The planner's steady-state cost of one concrete pipeline: the figure every planner optimises.

Model (the simulator plays the same rules out event by event):
- a stage's devices are replicas that take inputs in turn, so a stage can start a new input
  every (stage compute time / replicas);
- sending a cut's tensors occupies the channel for bytes / bandwidth (propagation latency adds
  to latency, not to occupancy); over private links a device sends one message at a time (a
  worker has one sender thread), so its sends on all its links add up; a shared medium is one
  resource for all its members, so its transfers add up;
- a device is busy per input for its share of its stage's inputs: receiving each (the first
  device: making it), computing, sending it on, at the runtime's own costs (cost/runtime.py)
  where they were measured; the first device also makes and forwards the other replicas' inputs;
- the period (time between outputs) is the busiest of all those resources; throughput = 1/period;
- latency = compute along the path + every transfer (latency + bytes / bandwidth, and its
  sending and receiving);
- energy per input: every device in the plan draws idle power for a period and busy power on
  top while it works.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from edgewise.cost.comm import transfer_time_s
from edgewise.plan.profile import GraphProfile


@dataclass(frozen=True)
class StageSpan:
    start: int                       # first op (index in topological order)
    end: int                         # one past the last op
    devices: tuple[str, ...]


@dataclass(frozen=True)
class PipelineCost:
    period_s: float                  # inf when some stage does not fit or two stages cannot talk
    latency_s: float
    energy_j: float
    stage_s: tuple[float, ...]       # compute time per input on one replica
    bytes_sent: int                  # per input
    memory_bytes: dict[str, int]

    @property
    def feasible(self) -> bool:
        return math.isfinite(self.period_s)

    @property
    def throughput_per_s(self) -> float:
        return 1.0 / self.period_s if self.period_s > 0 else math.inf


def sends_from(device: str) -> str:
    """The resource a device's sends over private links queue for: a worker has one sender
    thread, so however many links it has, one message leaves at a time."""
    return f"{device}:out"


def channel_loads(prof: GraphProfile, spans: list[StageSpan]) -> dict[str, float] | None:
    """Busy seconds per input of each channel resource; None when consecutive stages cannot talk."""
    loads: dict[str, float] = {}
    first = spans[0].devices
    for d in first[1:]:
        # inputs arrive on stage 0's first device, which forwards every other replica's share
        ch = prof.cluster.channel(first[0], d)
        if ch is None:
            return None
        key = ch.name if ch.shared else sends_from(first[0])
        loads[key] = loads.get(key, 0.0) + prof.live_bytes[0] / ch.bandwidth_bytes_per_s / len(first)
    for left, right in zip(spans, spans[1:]):
        nbytes = prof.cut_bytes(left.end)
        r, r2 = len(left.devices), len(right.devices)
        turns = math.lcm(r, r2)      # input k goes from replica k mod r to replica k mod r2
        for k in range(turns):
            a, b = left.devices[k % r], right.devices[k % r2]
            ch = prof.cluster.channel(a, b)
            if ch is None:
                return None
            if nbytes:
                key = ch.name if ch.shared else sends_from(a)
                loads[key] = loads.get(key, 0.0) + nbytes / ch.bandwidth_bytes_per_s / turns
    return loads


def evaluate(prof: GraphProfile, spans: list[StageSpan]) -> PipelineCost:
    stage_s = tuple(prof.stage_time_s(prof.class_of[s.devices[0]], s.start, s.end) for s in spans)
    memory = {d: prof.stage_memory_bytes(s.start, s.end) for s in spans for d in s.devices}
    loads = channel_loads(prof, spans)
    fits = all(memory[d] <= prof.cluster.node(d).device.memory_bytes for d in memory)
    busy_s = _device_loads(prof, spans)
    if loads is None or not fits:
        period = math.inf
    else:
        period = max(list(busy_s.values()) + list(loads.values()))
    latency = sum(stage_s)
    for left, right in zip(spans, spans[1:]):
        a, b = prof.class_of[left.devices[0]], prof.class_of[right.devices[0]]
        nbytes = prof.cut_bytes(left.end)
        latency += (transfer_time_s(nbytes, prof.cluster.channel(left.devices[0], right.devices[0]))
                    + prof.runtime[a].send(nbytes) + prof.runtime[b].receive(nbytes))
    energy = 0.0
    for d, busy in busy_s.items():
        dev = prof.cluster.node(d).device
        energy += dev.idle_power_w * period + (dev.busy_power_w - dev.idle_power_w) * busy
    return PipelineCost(period_s=period, latency_s=latency, energy_j=energy, stage_s=stage_s,
                        bytes_sent=input_forward_bytes(prof, spans[0]) + sum(prof.cut_bytes(s.end) for s in spans[:-1]), memory_bytes=memory)


def _device_loads(prof: GraphProfile, spans: list[StageSpan]) -> dict[str, float]:
    """Busy seconds per input of each device: its share of its stage's inputs, each received,
    computed and sent on; stage 0's first device also makes every input and forwards the other
    replicas' share."""
    busy = {}
    for s in spans:
        k = prof.class_of[s.devices[0]]
        for i, d in enumerate(s.devices):     # stage 0's replicas beyond the first receive their inputs
            busy[d] = prof.device_time_s(k, s.start, s.end, makes=s.start == 0 and i == 0) / len(s.devices)
    first = spans[0]
    r = len(first.devices)
    if r > 1:
        rt_src = prof.runtime[prof.class_of[first.devices[0]]]
        busy[first.devices[0]] += (rt_src.input(prof.live_bytes[0]) + rt_src.send(prof.live_bytes[0])) * (r - 1) / r
    return busy


def input_forward_bytes(prof: GraphProfile, first: StageSpan) -> int:
    """Input bytes per input that stage 0's first replica forwards to the others."""
    r = len(first.devices)
    return round(int(prof.live_bytes[0]) * (r - 1) / r)


def objective_value(cost: PipelineCost, objective: str) -> float:
    """What a planner minimises for each objective."""
    if not cost.feasible:
        return math.inf
    return {"throughput": cost.period_s, "latency": cost.latency_s, "energy": cost.energy_j}[objective]
