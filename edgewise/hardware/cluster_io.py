"""Clusters from YAML: a file path or the name of a built-in (edgewise/hardware/clusters/*.yaml).

    name: edge-fleet
    description: four Raspberry Pi 4 and a Jetson Nano on one Wi-Fi channel
    nodes:
      - {name: pi0, device: raspberry-pi-4}          # a catalogue name (`edgewise devices`)
      - name: box                                    # or a device written inline
        device: {kind: cpu, peak_flops_per_s: {float32: 200 GFLOP/s}, memory: 16 GiB, mem_bandwidth: 20 GB/s}
    links:                                           # point to point, each with its own bandwidth
      - {a: pi0, b: box, bandwidth: 1 Gbit/s, latency: 0.2 ms}
    media:                                           # shared channels: members share the air time
      - {name: wifi, members: [pi0, box], bandwidth: 80 Mbit/s, latency: 3 ms}

Figures take human units ("100 Mbit/s", "5 ms", "4 GiB") or plain numbers in bytes, bytes/s
and seconds. Any mistake is one EdgewiseError line naming the field and what would be valid.
"""
from __future__ import annotations

import os
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Union

import yaml
from pydantic import Discriminator, Tag, ValidationError, model_validator

from edgewise.errors import EdgewiseError
from edgewise.hardware.catalogue import DeviceSpec, device
from edgewise.hardware.cluster import Cluster, Link, Medium, Node
from edgewise.hardware.spec import (
    Bandwidth,
    Seconds,
    Spec,
    close_matches,
    validation_line,
)

DEFAULT_CLUSTER = "edge-fleet"


def _device_tag(value: Any) -> str | None:
    return "name" if isinstance(value, str) else "inline" if isinstance(value, dict) else None


DeviceRef = Annotated[
    Union[Annotated[str, Tag("name")], Annotated[DeviceSpec, Tag("inline")]],
    Discriminator(_device_tag, custom_error_type="device_ref",
                  custom_error_message="expected a catalogue device name or an inline device mapping"),
]


class NodeSpec(Spec):
    name: str
    device: DeviceRef


class LinkSpec(Spec):
    a: str
    b: str
    bandwidth: Bandwidth
    latency: Seconds = 0.0

    @model_validator(mode="after")
    def _two_ends(self) -> "LinkSpec":
        if self.a == self.b:
            raise ValueError(f"a link joins two different devices, both ends are {self.a!r}")
        return self


class MediumSpec(Spec):
    name: str
    members: list[str]
    bandwidth: Bandwidth
    latency: Seconds = 0.0


class ClusterSpec(Spec):
    name: str | None = None                  # defaults to the file's stem
    description: str = ""
    nodes: list[NodeSpec]
    links: list[LinkSpec] = []
    media: list[MediumSpec] = []


def _builtin_dir():
    return resources.files("edgewise.hardware").joinpath("clusters")


@lru_cache(maxsize=1)
def builtin_clusters() -> dict[str, str]:
    """Built-in cluster name -> its description."""
    out = {}
    for f in sorted(_builtin_dir().iterdir(), key=lambda f: f.name):
        if f.name.endswith(".yaml"):
            name = f.name.removesuffix(".yaml")
            out[name] = _parse_spec(f.read_text(), f"{name} (built-in)").description
    return out


def load_cluster(name_or_path: str | os.PathLike = DEFAULT_CLUSTER) -> Cluster:
    """A cluster from a YAML file, or a built-in by name (see `edgewise clusters`)."""
    text, where, stem = _read(name_or_path)
    spec = _parse_spec(text, where)
    return build_cluster(spec, where, default_name=stem)


def parse_cluster(text: str, where: str = "<cluster>", default_name: str = "cluster") -> Cluster:
    """A cluster from YAML text; `where` names it in errors."""
    return build_cluster(_parse_spec(text, where), where, default_name)


def _read(name_or_path: str | os.PathLike) -> tuple[str, str, str]:
    """(YAML text, how to name it in errors, default cluster name)."""
    s = os.fspath(name_or_path)
    path = Path(s)
    looks_like_path = path.suffix in (".yaml", ".yml") or os.sep in s or path.exists()
    if not looks_like_path:
        builtin = _builtin_dir().joinpath(f"{s}.yaml")
        if s and builtin.is_file():
            return builtin.read_text(), f"{s} (built-in)", s
        names = list(builtin_clusters())
        raise EdgewiseError(f"cluster {s!r}: no such file and no built-in cluster{close_matches(s, names)}; "
                            f"built-in: {', '.join(names)}")
    if not path.is_file():
        raise EdgewiseError(f"cluster file {s!r} not found" if not path.exists()
                            else f"cluster file {s!r} is not a regular file")
    try:
        return path.read_text(), s, path.stem
    except (OSError, UnicodeDecodeError) as e:
        raise EdgewiseError(f"cluster file {s!r} cannot be read ({e})") from e


def _parse_spec(text: str, where: str) -> ClusterSpec:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise EdgewiseError(f"{where}: not valid YAML{at}: {problem}") from e
    if not isinstance(raw, dict):
        raise EdgewiseError(f"{where}: a cluster file is a YAML mapping with keys "
                            f"{', '.join(ClusterSpec.model_fields)}; got {type(raw).__name__}")
    try:
        return ClusterSpec.model_validate(raw)
    except ValidationError as e:
        raise EdgewiseError(validation_line(where, e)) from e


def build_cluster(spec: ClusterSpec, where: str, default_name: str) -> Cluster:
    """Resolve catalogue names and units into the `Cluster` every other layer reads."""
    nodes = []
    for i, n in enumerate(spec.nodes):
        if isinstance(n.device, str):
            try:
                dev = device(n.device)
            except EdgewiseError as e:
                raise EdgewiseError(f"{where}: nodes.{i}.device: {e}") from e
        else:
            dev = n.device.to_device(n.device.name or n.name, default_source=f"given inline in {where}")
        nodes.append(Node(name=n.name, device=dev))
    try:
        return Cluster(
            name=spec.name or default_name, nodes=nodes,
            links=[Link(a=l.a, b=l.b, bandwidth_bytes_per_s=l.bandwidth, latency_s=l.latency) for l in spec.links],
            media=[Medium(name=m.name, members=m.members, bandwidth_bytes_per_s=m.bandwidth, latency_s=m.latency)
                   for m in spec.media])
    except ValidationError as e:
        raise EdgewiseError(validation_line(where, e)) from e
