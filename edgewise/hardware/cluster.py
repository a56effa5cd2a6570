"""Where a model can run: devices, the links between them, and shared media.

A `Link` joins two devices with its own bandwidth. A `Medium` is a channel several devices
share (one Wi-Fi channel): every transfer between two of its members takes air time from
the same budget, so concurrent transfers contend. `Cluster.channel(a, b)` says which one a
transfer between two devices uses; the simulator and the runtime's testbed both honour it.
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Device(BaseModel):
    """A device model from the catalogue (or inline in a cluster file)."""
    model_config = ConfigDict(extra="forbid")

    name: str
    kind: Literal["cpu", "gpu", "npu"] = "cpu"
    summary: str = ""                            # what it is, e.g. "4x Cortex-A72 @ 1.5 GHz, 4 GB"
    peak_flops_per_s: dict[str, float]          # dtype -> peak FLOP/s, e.g. {"float32": 1.3e10}
    memory_bytes: int
    mem_bandwidth_bytes_per_s: float
    idle_power_w: float = 0.0
    busy_power_w: float = 0.0
    sources: dict[str, str] = Field(default_factory=dict)  # figure -> where it comes from

    def peak(self, dtype: str = "float32") -> float:
        return self.peak_flops_per_s.get(dtype) or self.peak_flops_per_s["float32"]


class Node(BaseModel):
    """One device in a cluster: a unique name and the device model it is."""
    model_config = ConfigDict(extra="forbid")

    name: str
    device: Device


class Link(BaseModel):
    model_config = ConfigDict(extra="forbid")

    a: str
    b: str
    bandwidth_bytes_per_s: float = Field(gt=0)
    latency_s: float = Field(default=0.0, ge=0)

    @property
    def name(self) -> str:
        return f"{self.a}<->{self.b}"


class Medium(BaseModel):
    """A shared channel: all members' transfers share `bandwidth_bytes_per_s`."""
    model_config = ConfigDict(extra="forbid")

    name: str
    members: list[str]
    bandwidth_bytes_per_s: float = Field(gt=0)
    latency_s: float = Field(default=0.0, ge=0)


class Channel(BaseModel):
    """What a transfer between two devices travels over (a link or a medium)."""
    name: str
    bandwidth_bytes_per_s: float
    latency_s: float
    shared: bool


class Cluster(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    nodes: list[Node]
    links: list[Link] = Field(default_factory=list)
    media: list[Medium] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check_names(self) -> "Cluster":
        names = [n.name for n in self.nodes]
        if not names:
            raise ValueError("nodes: a cluster needs at least one device")
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"nodes: device names must be unique, repeated: {sorted(dup)}")
        known = set(names)
        for link in self.links:
            for end in (link.a, link.b):
                if end not in known:
                    raise ValueError(f"links: unknown device {end!r}, known: {sorted(known)}")
        for m in self.media:
            for end in m.members:
                if end not in known:
                    raise ValueError(f"media.{m.name}.members: unknown device {end!r}, known: {sorted(known)}")
        return self

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def channel(self, a: str, b: str) -> Channel | None:
        """The channel a transfer from `a` to `b` uses: a direct link first, else a shared medium.

        None when the two cannot talk (or a == b, which needs no transfer).
        """
        if a == b:
            return None
        for link in self.links:
            if {link.a, link.b} == {a, b}:
                return Channel(name=link.name, bandwidth_bytes_per_s=link.bandwidth_bytes_per_s,
                               latency_s=link.latency_s, shared=False)
        for m in self.media:
            if a in m.members and b in m.members:
                return Channel(name=m.name, bandwidth_bytes_per_s=m.bandwidth_bytes_per_s,
                               latency_s=m.latency_s, shared=True)
        return None
