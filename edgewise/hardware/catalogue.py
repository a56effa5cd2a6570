"""The catalogue of real devices (package file catalogue.yaml) plus what `edgewise profile` measured.

`catalogue()` is every device by name; `device(name)` is one of them, with close matches in the
error when the name is unknown. Devices measured on this machine (`local`, `local-cuda`) come
from the profile database, so a cluster that names `local` plans with measured figures.
"""
from __future__ import annotations

import os
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import ValidationError

from edgewise.errors import EdgewiseError
from edgewise.hardware.cluster import Device
from edgewise.hardware.profile_db import ProfileDB, default_db_path
from edgewise.hardware.spec import (
    Bandwidth,
    Bytes,
    Figure,
    Flops,
    Spec,
    Watts,
    close_matches,
    validation_line,
)

MEASURED_LABELS = ("local", "local-cuda")     # what `edgewise profile` records for CPU and GPU


class DeviceSpec(Spec):
    """A device as written in YAML (catalogue entry or inline in a cluster file)."""
    name: str | None = None                    # the catalogue key names catalogue entries
    kind: Literal["cpu", "gpu", "npu"] = "cpu"
    summary: str = ""
    peak_flops_per_s: dict[str, Figure[Flops]]
    memory: Figure[Bytes]
    mem_bandwidth: Figure[Bandwidth]
    idle_power: Figure[Watts] = Figure[Watts](value=0.0, source="not given")
    busy_power: Figure[Watts] = Figure[Watts](value=0.0, source="not given")

    def figures(self) -> dict[str, Figure]:
        """Each figure under the name it has on `Device` (the key of `Device.sources`)."""
        return {**{f"peak_flops_per_s.{d}": f for d, f in self.peak_flops_per_s.items()},
                "memory_bytes": self.memory, "mem_bandwidth_bytes_per_s": self.mem_bandwidth,
                "idle_power_w": self.idle_power, "busy_power_w": self.busy_power}

    def to_device(self, name: str, default_source: str) -> Device:
        sources = {k: f.source or default_source for k, f in self.figures().items()}
        return Device(name=name, kind=self.kind, summary=self.summary,
                      peak_flops_per_s={d: f.value for d, f in self.peak_flops_per_s.items()},
                      memory_bytes=int(self.memory.value), mem_bandwidth_bytes_per_s=self.mem_bandwidth.value,
                      idle_power_w=self.idle_power.value, busy_power_w=self.busy_power.value, sources=sources)


def parse_catalogue(text: str, where: str) -> dict[str, Device]:
    """Devices from catalogue YAML text; every figure must name its source."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise EdgewiseError(f"{where}: not valid YAML ({str(e).splitlines()[0]})") from e
    if not isinstance(raw, dict) or not raw:
        raise EdgewiseError(f"{where}: a catalogue is a YAML mapping of device name -> device")
    devices = {}
    for name, entry in raw.items():
        try:
            spec = DeviceSpec.model_validate(entry)
        except ValidationError as e:
            raise EdgewiseError(validation_line(f"{where}: {name}", e)) from e
        unsourced = [k for k, f in spec.figures().items() if not f.source]
        if unsourced:
            raise EdgewiseError(f"{where}: {name}: figure {unsourced[0]} has no source; "
                                f"write {{value: ..., source: \"<document>\" or \"estimate: <how>\"}}")
        devices[str(name)] = spec.to_device(str(name), default_source="")
    return devices


@lru_cache(maxsize=1)
def builtin_devices() -> dict[str, Device]:
    """The devices in the package's catalogue.yaml."""
    text = resources.files("edgewise.hardware").joinpath("catalogue.yaml").read_text()
    return parse_catalogue(text, "catalogue.yaml")


def measured_devices(db_path: str | os.PathLike | None = None) -> dict[str, Device]:
    """Devices `edgewise profile` measured into the profile database (none if it does not exist)."""
    path = Path(db_path) if db_path is not None else default_db_path()
    if not path.exists():
        return {}
    with ProfileDB(path, readonly=True) as db:
        found = {label: db.measured_device(label) for label in MEASURED_LABELS}
    return {label: d for label, d in found.items() if d is not None}


def catalogue(db_path: str | os.PathLike | None = None) -> dict[str, Device]:
    """Every device by name: the built-in catalogue, then those measured on this machine."""
    return {**builtin_devices(), **measured_devices(db_path)}


def device(name: str, db_path: str | os.PathLike | None = None) -> Device:
    """One device by catalogue name; an unknown name is an error listing close matches."""
    if name in builtin_devices():
        return builtin_devices()[name]
    measured = measured_devices(db_path)
    if name in measured:
        return measured[name]
    if name in MEASURED_LABELS:
        raise EdgewiseError(f"device {name!r} has not been measured here yet: run `edgewise profile` first "
                            f"(profile database: {db_path or default_db_path()})")
    known = [*builtin_devices(), *measured]
    raise EdgewiseError(f"unknown device {name!r}{close_matches(name, known)}; "
                        f"see `edgewise devices` for the catalogue")
