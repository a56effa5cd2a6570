"""What every pipeline planner needs to know about one (graph, cluster, cost, batch), precomputed.

Stages are contiguous ranges [p, q) of the topological order; boundary b sits before op b.
Everything a planner asks about a range is O(1) from prefix sums: compute time on a device
class, parameter bytes, and the live bytes that a cut at boundary b must carry (every tensor
produced before b and consumed at or after b, skips and graph inputs included).

Devices are grouped into classes of interchangeable nodes (same catalogue device, same media,
same kinds of links), so a planner searches over counts per class instead of device subsets.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from edgewise.cost.roofline import CostModel
from edgewise.cost.runtime import RuntimeCost, StageCosts
from edgewise.graph.opgraph import OpGraph, _dtype_bytes
from edgewise.hardware.cluster import Channel, Cluster, Node


@dataclass(frozen=True)
class DeviceClass:
    members: tuple[str, ...]        # node names, in cluster order
    node: Node                      # a representative


@dataclass
class GraphProfile:
    graph: OpGraph
    cluster: Cluster
    batch: int
    classes: list[DeviceClass]
    time_prefix_s: np.ndarray        # [class, n+1]: compute time of ops [0, b) on one device of the class
    param_prefix_bytes: np.ndarray   # [n+1]
    live_bytes: np.ndarray           # [n+1]: bytes live across boundary b (0 < b < n is a cut), per input
    op_live_bytes: np.ndarray        # [n]: activations live while op i runs, per input
    class_of: dict[str, int] = field(default_factory=dict)
    runtime: list[RuntimeCost] = field(default_factory=list)   # per class: the runtime's own costs

    @property
    def n(self) -> int:
        return len(self.graph.ops)

    def stage_time_s(self, k: int, p: int, q: int, woken: bool = True) -> float:
        """One step of ops [p, q) on a device of class k: their times, and, for a device `woken`
        for each input, the step's wake-up cost where it was measured (cost/runtime.py)."""
        wake = 0.0
        if self.runtime and q > p and woken:
            wake = measured.wake_s if (measured := self.stage_costs(k, p, q)) else self.runtime[k].wake_s
        return float(self.time_prefix_s[k, q] - self.time_prefix_s[k, p]) + wake

    def stage_costs(self, k: int, p: int, q: int) -> StageCosts | None:
        """The runtime's costs of ops [p, q) on a device of class k, where they were measured on
        that stage itself."""
        if not self.runtime or not self.runtime[k].stages or q <= p:     # most: nothing measured per stage
            return None
        return self.runtime[k].stages.get((self.graph.ops[p].name, self.graph.ops[q - 1].name))

    def step_spread_s(self, k: int, p: int, q: int, mean_s: float) -> float:
        """How much a step of ops [p, q) on a device of class k, `mean_s` on average, varies (a
        standard deviation; 0 where nothing was measured). Measured on the stage itself, it is
        that stage's. Measured on the whole model's step, a stage's share of it varies as a sum of
        that many independent stretches would, its variance in proportion to its time (an
        emulated Pi's whole mobilenet_v2 step varied by 5.5 ms and resnet18's, 2.5 times as long,
        by 5.4 to 6.7; a run's Pi stage of 43% of mobilenet_v2 by 2.0 to 2.7: a spread in
        proportion to the time, or the same spread for any step, is 2.3 times off on one of the
        two, this about 1.5 times on each)."""
        if (measured := self.stage_costs(k, p, q)) is not None:
            return measured.spread_s
        if not self.runtime or not self.runtime[k].spread_s or mean_s <= 0:
            return 0.0
        return self.runtime[k].spread_s * math.sqrt(mean_s / self.stage_time_s(k, 0, self.n))

    def serves_alone(self, k: int, p: int, q: int) -> bool:
        """Whether a device of class k that makes its own inputs and holds ops [p, q) has its cost
        of serving them alone measured: the whole model, for this model (RuntimeCost.alone_s)."""
        return p == 0 and q == self.n and bool(self.runtime) and self.runtime[k].alone_s is not None

    def device_time_s(self, k: int, p: int, q: int, makes: bool | None = None) -> float:
        """What one input of stage [p, q) costs a device of class k: receiving its input (or
        making it: by default stage 0 does, but its replicas beyond the first device receive
        theirs), computing, and sending the cut at q on."""
        rt = self.runtime[k]
        makes = p == 0 if makes is None else makes
        take = self.making_s(k, q) if makes else rt.receive(self.cut_bytes(p) if p else int(self.live_bytes[0]))
        give = rt.send(self.cut_bytes(q)) if q < self.n else 0.0
        return take + self.stage_time_s(k, p, q, woken=not (makes and self.serves_alone(k, p, q))) + give

    def making_s(self, k: int, q: int) -> float:
        """What making an input costs a device of class k whose stage ends at q, with what the
        device pays after the compute for one it also finishes (the whole model on it)."""
        return self.runtime[k].input(self.live_bytes[0]) + (self.finishing_s(k) if q == self.n else 0.0)

    def finishing_s(self, k: int) -> float:
        """What a device of class k pays, beyond the compute, for an input it made and finishes
        itself: the worker loop's own work that a send or a receive would otherwise include, or,
        where it was measured for this model, its whole cost of serving alone beyond making."""
        rt = self.runtime[k]
        return rt.alone_s if rt.alone_s is not None else rt.loop(self.live_bytes[0])

    def stage_memory_bytes(self, p: int, q: int) -> int:
        """Parameters of the ops plus the largest activation working set among them."""
        act = int(self.op_live_bytes[p:q].max()) if q > p else 0
        return int(self.param_prefix_bytes[q] - self.param_prefix_bytes[p]) + act

    def cut_bytes(self, b: int) -> int:
        """Bytes a cut at boundary b sends per input (0 at the ends: inputs start on stage 0's
        device and outputs are collected on the last stage's)."""
        return int(self.live_bytes[b]) if 0 < b < self.n else 0

    def lowest_start(self, k: int) -> np.ndarray:
        """For each end q, the smallest start p such that ops [p, q) fit one device of class k
        (q itself when not even op q-1 alone fits). Non-decreasing in q."""
        limit = self.classes[k].node.device.memory_bytes
        lo = np.zeros(self.n + 1, dtype=np.int64)
        window: deque[int] = deque()   # indices of op_live_bytes in [p, q), decreasing values
        p = 0
        for q in range(1, self.n + 1):
            while window and self.op_live_bytes[window[-1]] <= self.op_live_bytes[q - 1]:
                window.pop()
            window.append(q - 1)
            while p < q and (self.param_prefix_bytes[q] - self.param_prefix_bytes[p]
                             + self.op_live_bytes[window[0]]) > limit:
                p += 1
                while window and window[0] < p:
                    window.popleft()
            lo[q] = p
        return lo


def device_classes(cluster: Cluster) -> list[DeviceClass]:
    """Group nodes that can swap places without changing any cost."""
    def signature(node: Node) -> tuple:
        media = tuple(sorted(m.name for m in cluster.media if node.name in m.members))
        links = []
        for link in cluster.links:
            if node.name in (link.a, link.b):
                other = cluster.node(link.b if link.a == node.name else link.a)
                links.append((other.device.name, link.bandwidth_bytes_per_s, link.latency_s))
        return node.device.model_dump_json(), media, tuple(sorted(links))

    groups: dict[tuple, list[str]] = {}
    for node in cluster.nodes:
        groups.setdefault(signature(node), []).append(node.name)
    return [DeviceClass(members=tuple(names), node=cluster.node(names[0])) for names in groups.values()]


def profile(graph: OpGraph, cluster: Cluster, cost: CostModel, batch: int = 1) -> GraphProfile:
    n = len(graph.ops)
    classes = device_classes(cluster)
    times = np.zeros((len(classes), n + 1))
    for k, c in enumerate(classes):
        times[k, 1:] = np.cumsum([cost.op_time_s(op, c.node.device, batch) for op in graph.ops])
    params = np.zeros(n + 1, dtype=np.int64)
    params[1:] = np.cumsum([op.param_bytes for op in graph.ops])

    # A tensor produced at position p (graph inputs at -1) and last needed at position `last`
    # is live across boundaries p+1 .. last; graph outputs are needed at the end (n).
    index = graph.index
    last_use: dict[str, int] = {}
    for i, op in enumerate(graph.ops):
        for name in op.inputs:
            last_use[name] = i
    for name in graph.outputs:
        last_use[name] = n
    diff = np.zeros(n + 2, dtype=np.int64)
    for name, last in last_use.items():
        if name.startswith("input:"):
            k = int(name.split(":", 1)[1])
            spec = graph.inputs[k] if k < len(graph.inputs) else None
            nbytes = math.prod(spec.shape) * _dtype_bytes(spec.dtype) if spec else 0
            p = -1
        elif name in index:
            p = index[name]
            nbytes = graph.ops[p].output_bytes
        else:
            continue
        diff[p + 1] += nbytes
        diff[last + 1] -= nbytes
    live = np.cumsum(diff)[: n + 1] * batch
    op_live = np.array([live[i] + graph.ops[i].output_bytes * batch for i in range(n)], dtype=np.int64)
    prof = GraphProfile(graph=graph, cluster=cluster, batch=batch, classes=classes, time_prefix_s=times,
                        param_prefix_bytes=params, live_bytes=live, op_live_bytes=op_live)
    prof.class_of = {name: k for k, c in enumerate(classes) for name in c.members}
    prof.runtime = [cost.runtime_cost(c.node.device) for c in classes]
    return prof


def class_channel(cluster: Cluster, a: DeviceClass, b: DeviceClass) -> Channel | None:
    """The channel between a node of class a and a different node of class b."""
    for x in a.members:
        for y in b.members:
            if x != y:
                return cluster.channel(x, y)
    return None
