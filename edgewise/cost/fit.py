"""Fit the roofline's efficiencies (cost/roofline.py) from what `edgewise profile` measured.

The roofline says an op takes  max(flops / (peak * e_class), bytes / (bandwidth * e_mem)) + overhead.
Given timed rows for one device, each parameter is read off the rows it governs:

1. overhead   = median time of the one-element-add microbenchmark (the fixed cost of any op);
2. e_mem      = median achieved / catalogue bandwidth over rows without FLOPs (copies,
                elementwise ops) whose time is mostly work (> 2x overhead);
3. e_class    = median achieved / peak FLOP/s over that class's rows that are mostly work and
                compute-bound (their time exceeds what memory alone explains).

Medians keep one noisy row from moving a figure; on rows the roofline itself generated this
recovers the efficiencies exactly (tests/cost/test_fit.py). A class with no usable row keeps
the default, so the model never has holes.
"""
from __future__ import annotations

import os
import statistics
from dataclasses import dataclass

from edgewise.cost.roofline import OP_CLASSES, CostModel, Efficiency
from edgewise.errors import EdgewiseError
from edgewise.hardware.catalogue import builtin_devices, measured_devices
from edgewise.hardware.cluster import Device
from edgewise.hardware.profile_db import Measurement, ProfileDB

WORK_OVER_OVERHEAD = 2.0       # a row informs an efficiency only if its time is mostly work
COMPUTE_BOUND_MARGIN = 1.05    # ... and a compute efficiency only if memory explains < 1/1.05 of it


@dataclass(frozen=True)
class FittedDevice:
    """One device's fitted efficiencies and how many rows informed each figure."""
    efficiency: Efficiency
    rows_used: dict[str, int]


def fit_efficiency(rows: list[Measurement], device: Device, dtype: str = "float32",
                   default: Efficiency = Efficiency()) -> FittedDevice:
    """Efficiencies of `device` from its timed rows, and how many rows informed each figure."""
    overhead_rows = [m.time_s for m in rows if m.kind == "overhead"]
    overhead = statistics.median(overhead_rows) if overhead_rows else default.overhead_s

    def work_s(m: Measurement) -> float:
        return m.time_s - overhead

    def mostly_work(m: Measurement) -> bool:
        return m.time_s > WORK_OVER_OVERHEAD * overhead

    bw = device.mem_bandwidth_bytes_per_s
    mem = [m.bytes / (bw * work_s(m)) for m in rows
           if m.flops == 0 and m.bytes > 0 and m.kind in ("memory", "op") and mostly_work(m)]
    memory = statistics.median(mem) if mem else default.memory

    peak = device.peak(dtype)
    compute = dict(default.compute)
    used = {"overhead": len(overhead_rows), "memory": len(mem)}
    for cls in OP_CLASSES:
        eff = [m.flops / (peak * work_s(m)) for m in rows
               if m.op_class == cls and m.flops > 0 and m.dtype == dtype and mostly_work(m)
               and work_s(m) > COMPUTE_BOUND_MARGIN * m.bytes / (bw * memory)]
        used[cls] = len(eff)
        if eff:
            compute[cls] = statistics.median(eff)
    return FittedDevice(Efficiency(compute=compute, memory=memory, overhead_s=overhead), used)


def fit_cost_model(db: ProfileDB | str | os.PathLike, dtype: str = "float32",
                   devices: list[str] | None = None) -> CostModel:
    """A CostModel with fitted efficiencies for every device measured in the profile database."""
    fitted = fit_devices(db, dtype, devices)
    return CostModel(per_device={label: f.efficiency for label, f in fitted.items()}, dtype=dtype)


def fit_devices(db: ProfileDB | str | os.PathLike, dtype: str = "float32",
                devices: list[str] | None = None) -> dict[str, FittedDevice]:
    """Fitted efficiencies per device label in the database (or just `devices`).

    A label is costed against its catalogue figures (`local` against what was measured there);
    a label that names no known device has nothing to be a fraction of, and is left out.
    """
    if not isinstance(db, ProfileDB):
        if not os.path.exists(db):
            raise EdgewiseError(f"profile database {os.fspath(db)!r} not found: run `edgewise profile` first")
        with ProfileDB(db, readonly=True) as opened:
            return fit_devices(opened, dtype, devices)
    known = {**builtin_devices(), **measured_devices(db.path)}
    fitted = {}
    for label in (devices if devices is not None else db.devices()):
        rows = db.measurements(device=label)
        if label in known and rows:
            fitted[label] = fit_efficiency(rows, known[label], dtype)
    return fitted
