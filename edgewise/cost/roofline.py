"""Per-op latency: a roofline with per-op-class efficiencies.

time = max(flops / (peak * efficiency[class]), bytes_moved / (mem_bw * memory_efficiency))
       + per-op overhead

The efficiencies default to figures typical of framework kernels on small devices; `fit`
(cost/fit.py) replaces them with what `edgewise profile` measured into the profile database.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from edgewise.cost.runtime import FREE, RuntimeCost
from edgewise.graph.opgraph import Op
from edgewise.hardware.cluster import Device

OP_CLASSES = ("matmul", "conv", "attention", "other")


def op_class(kind: str) -> str:
    """Map an op kind (aten overload or module class name) to a cost class."""
    k = kind.lower()
    if "conv" in k:
        return "conv"
    if "attention" in k:
        return "attention"
    if any(t in k for t in ("mm", "linear", "matmul", "addmm", "bmm", "einsum")):
        return "matmul"
    return "other"


@dataclass(frozen=True)
class Efficiency:
    compute: dict[str, float] = field(default_factory=lambda: {
        "matmul": 0.5, "conv": 0.4, "attention": 0.35, "other": 0.25})
    memory: float = 0.6
    overhead_s: float = 20e-6


@dataclass
class CostModel:
    """Latency of ops on devices. `per_device` is keyed by catalogue device name.

    `measured_s` holds op times that `edgewise profile MODEL` measured, keyed by (device name,
    op name) for one model: where present they replace the roofline (batch 1). `runtime` holds
    what the runtime itself costs each device per input and message, where it was measured.
    """
    per_device: dict[str, Efficiency] = field(default_factory=dict)
    default: Efficiency = field(default_factory=Efficiency)
    dtype: str = "float32"
    measured_s: dict[tuple[str, str], float] = field(default_factory=dict)
    runtime: dict[str, RuntimeCost] = field(default_factory=dict)

    def efficiency(self, device: Device) -> Efficiency:
        return self.per_device.get(device.name, self.default)

    def runtime_cost(self, device: Device) -> RuntimeCost:
        return self.runtime.get(device.name, FREE)

    def op_time_s(self, op: Op, device: Device, batch: int = 1) -> float:
        measured = self.measured_s.get((device.name, op.name))
        if measured is not None and batch == 1:
            return measured
        eff = self.efficiency(device)
        compute = batch * op.flops / (device.peak(self.dtype) * eff.compute[op_class(op.kind)])
        memory = (batch * (op.bytes_moved - op.param_bytes) + op.param_bytes) / (
            device.mem_bandwidth_bytes_per_s * eff.memory)
        return max(compute, memory) + eff.overhead_s
