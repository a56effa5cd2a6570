"""Synthetic graphs and clusters for planner and simulator tests (built from the seam types only)."""
from __future__ import annotations

import random

from edgewise.graph.opgraph import Op, OpGraph, TensorSpec
from edgewise.hardware.cluster import Cluster, Device, Link, Medium, Node

PI = Device(name="pi4", peak_flops_per_s={"float32": 1.2e10}, memory_bytes=2 << 30,
            mem_bandwidth_bytes_per_s=4e9, idle_power_w=2.7, busy_power_w=6.4)
NANO = Device(name="jetson-nano", kind="gpu", peak_flops_per_s={"float32": 2.3e11}, memory_bytes=4 << 30,
              mem_bandwidth_bytes_per_s=2.5e10, idle_power_w=1.5, busy_power_w=10.0)


def chain_graph(n: int, seed: int = 0, skips: bool = True, name: str = "synthetic") -> OpGraph:
    """n ops in a chain with random costs and sizes; with `skips`, some ops also read an earlier op."""
    rng = random.Random(seed)
    ops = []
    for i in range(n):
        inputs = ["input:0"] if i == 0 else [f"op{i - 1}"]
        if skips and i >= 2 and rng.random() < 0.3:
            inputs.append(f"op{rng.randrange(0, i - 1)}")
        out = rng.choice([1, 2, 4, 8, 16, 64]) * 4096
        ops.append(Op(name=f"op{i}", kind=rng.choice(["aten.convolution.default", "aten.mm.default", "aten.relu.default"]),
                      layer=f"layer{i // 2}", inputs=tuple(inputs), output_shapes=((out // 4,),), output_bytes=out,
                      flops=rng.randrange(1, 200) * 10**7, bytes_moved=2 * out, param_bytes=rng.randrange(0, 50) * 10**5))
    return OpGraph(model=name, level="op", inputs=(TensorSpec(shape=(1, 3, 32, 32)),), outputs=(f"op{n - 1}",), ops=tuple(ops))


def wifi_cluster(pis: int = 4, nanos: int = 1, bw: float = 3e6, name: str = "wifi") -> Cluster:
    nodes = [Node(name=f"pi{i}", device=PI) for i in range(pis)] + [Node(name=f"nano{i}", device=NANO) for i in range(nanos)]
    return Cluster(name=name, nodes=nodes, media=[Medium(name="wifi", members=[n.name for n in nodes],
                                                        bandwidth_bytes_per_s=bw, latency_s=2e-3)])


def lan_cluster(pis: int = 2, nanos: int = 1, bw: float = 1.2e7, name: str = "lan") -> Cluster:
    nodes = [Node(name=f"pi{i}", device=PI) for i in range(pis)] + [Node(name=f"nano{i}", device=NANO) for i in range(nanos)]
    links = [Link(a=a.name, b=b.name, bandwidth_bytes_per_s=bw, latency_s=5e-4)
             for i, a in enumerate(nodes) for b in nodes[i + 1:]]
    return Cluster(name=name, nodes=nodes, links=links)
