"""How a cluster maps onto one Linux host: pure arithmetic, no side effects.

Each device becomes a network namespace with an address from 198.18.0.0/15 and a cgroup CPU
quota worth its catalogue speed relative to one core of this host. When the fleet's compute
exceeds what this host has, every device and every link is slowed by one common factor (time
dilation): quotas divide by it, link rates divide by it, latencies multiply by it, and measured
times divide by it to come back to the cluster's own time.
"""
from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass

from edgewise.errors import EdgewiseError
from edgewise.hardware.cluster import Cluster

NETWORK = ipaddress.ip_network("198.18.0.0/15")
PREFIX = "edgewise-"           # every namespace and cgroup the testbed makes starts with this
HUB = f"{PREFIX}hub"


@dataclass(frozen=True)
class Slot:
    """One emulated device."""
    node: str
    netns: str
    address: str
    cpu_quota_cores: float      # cgroup cpu.cfs_quota / period
    cpus: tuple[int, ...]       # cpuset the device's threads are pinned to
    threads: int


@dataclass(frozen=True)
class Layout:
    cluster: str
    dilation: float             # >= 1; cluster time = testbed time / dilation
    host_cores: int
    host_core_flops: float
    slots: tuple[Slot, ...]

    def slot(self, node: str) -> Slot:
        for s in self.slots:
            if s.node == node:
                return s
        raise EdgewiseError(f"testbed: no emulated device {node!r}; devices: {[s.node for s in self.slots]}")


def address(index: int) -> str:
    if index + 1 >= NETWORK.num_addresses - 1:
        raise EdgewiseError(f"testbed: {index + 1} devices do not fit in {NETWORK}")
    return str(NETWORK.network_address + index + 1)


def plan_layout(cluster: Cluster, host_core_flops: float, host_cores: int,
                headroom: float = 0.9) -> Layout:
    """Quotas, pinning and the dilation factor for `cluster` on a host of `host_cores` cores."""
    if host_core_flops <= 0 or host_cores <= 0:
        raise EdgewiseError("testbed: host speed and core count must be positive")
    want = [n.device.peak("float32") / host_core_flops for n in cluster.nodes]
    capacity = host_cores * headroom
    dilation = max(1.0, sum(want) / capacity, max(want) / capacity)
    # Whole devices must also pack onto cores; slow down a little more until they do.
    while (cpus := _pin([w / dilation for w in want], host_cores, headroom)) is None:
        dilation *= 1.05
    quotas = [w / dilation for w in want]
    slots = tuple(
        Slot(node=n.name, netns=f"{PREFIX}d{i}", address=address(i), cpu_quota_cores=q,
             cpus=cpus[i], threads=len(cpus[i]))
        for i, (n, q) in enumerate(zip(cluster.nodes, quotas)))
    return Layout(cluster=cluster.name, dilation=dilation, host_cores=host_cores,
                  host_core_flops=host_core_flops, slots=slots)


def _pin(quotas: list[float], host_cores: int, headroom: float) -> list[tuple[int, ...]] | None:
    """Worst-fit decreasing: devices under a core share cores, bigger ones get several to themselves.

    A bigger device must not share: its threads would get only what the other devices on a core
    leave them (CFS shares a core between runnable threads), less than its quota. None when that
    or some core carrying more than `headroom` cannot be avoided.
    """
    free = [headroom] * host_cores
    out: list[tuple[int, ...]] = [()] * len(quotas)
    for i in sorted(range(len(quotas)), key=lambda i: -quotas[i]):
        need = quotas[i]
        if need > headroom:
            cores = [c for c in range(host_cores) if free[c] == headroom][:math.ceil(need / headroom)]
            if len(cores) < math.ceil(need / headroom):
                return None
            for c in cores:
                free[c] = 0.0
        else:
            c = max(range(host_cores), key=lambda c: free[c])
            free[c] -= need
            cores = [c]
        out[i] = tuple(sorted(cores))
    return out if min(free) >= -1e-9 else None
