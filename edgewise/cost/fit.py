"""Fit the roofline's efficiencies (cost/roofline.py) from what `edgewise profile` measured.

The roofline says an op takes  max(flops / (peak * e_class), bytes / (bandwidth * e_mem)) + overhead.
Given timed rows for one device, each parameter is read off the rows it governs:

1. overhead   = median time of the one-element-add microbenchmark (the fixed cost of any op);
2. e_mem      = median achieved / catalogue bandwidth over rows without FLOPs (copies,
                elementwise ops) whose time is mostly work (> 2x overhead);
3. e_class    = median achieved / peak FLOP/s over that class's rows that are mostly work and
                compute-bound (their time exceeds what streaming their bytes at the copy
                benchmark's rate explains).

Medians keep one noisy row from moving a figure; on rows the roofline itself generated this
recovers the efficiencies exactly (tests/cost/test_fit.py). A class with no usable row keeps
the default, so the model never has holes.

Real ops do not split so cleanly: a linear layer whose weights stay in cache between calls
streams them faster than the copy benchmark's DRAM rate, and an elementwise op on a small
tensor is mostly overhead. So the read-off figures are only the start of a coordinate search
that minimises the mean |log(predicted / measured)| over all the device's rows, which moves a
figure only where that error drops. Efficiencies may then exceed 1: they are fractions of the
catalogue's DRAM bandwidth and peak, and caches beat both.
"""
from __future__ import annotations

import os
import statistics
from dataclasses import dataclass, replace

import numpy as np

from edgewise.cost.roofline import OP_CLASSES, CostModel, Efficiency
from edgewise.cost.runtime import RuntimeCost, fit_runtime
from edgewise.errors import EdgewiseError
from edgewise.hardware.catalogue import builtin_devices, measured_devices
from edgewise.hardware.cluster import Device
from edgewise.hardware.profile_db import Measurement, ProfileDB, default_db_path

WORK_OVER_OVERHEAD = 2.0       # a row informs an efficiency only if its time is mostly work
COMPUTE_BOUND_MARGIN = 1.05    # ... and a compute efficiency only if memory explains < 1/1.05 of it


@dataclass(frozen=True)
class FittedDevice:
    """One device's fitted efficiencies, how many rows informed each figure, and the fit's
    median |predicted / measured - 1| over the rows it was fitted to."""
    efficiency: Efficiency
    rows_used: dict[str, int]
    median_error: float = 0.0
    runtime: RuntimeCost | None = None      # the runtime's own costs, where they were measured


def fit_efficiency(rows: list[Measurement], device: Device, dtype: str = "float32",
                   default: Efficiency = Efficiency()) -> FittedDevice:
    """Efficiencies of `device` from its timed rows: read off each figure's own rows (steps 1-3 in
    the module docstring), then refine all of them together against every row (`_refine`)."""
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
    # Whether a row is compute-bound depends on the rate memory *can* stream (the copy benchmark),
    # not on the median op's rate: small elementwise ops stream far slower and would otherwise
    # make every matmul look memory-bound.
    copy = [m.bytes / (bw * work_s(m)) for m in rows if m.kind == "memory" and mostly_work(m)]
    streaming = max(copy) if copy else memory

    peak = device.peak(dtype)
    compute = dict(default.compute)
    used = {"overhead": len(overhead_rows), "memory": len(mem)}
    for cls in OP_CLASSES:
        eff = [m.flops / (peak * work_s(m)) for m in rows
               if m.op_class == cls and m.flops > 0 and m.dtype == dtype and mostly_work(m)
               and work_s(m) > COMPUTE_BOUND_MARGIN * m.bytes / (bw * streaming)]
        used[cls] = len(eff)
        if eff:
            compute[cls] = statistics.median(eff)
    start = Efficiency(compute=compute, memory=memory, overhead_s=overhead)
    fitted, error = _refine(rows, device, dtype, start)
    return FittedDevice(fitted, used, error)


class _Rows:
    """A device's timed rows as arrays, and the roofline's log error on them for given figures."""

    def __init__(self, rows: list[Measurement], device: Device, dtype: str):
        use = [m for m in rows if m.kind in ("op", "matmul", "conv", "memory", "overhead") and m.time_s > 0
               and (m.flops == 0 or m.dtype == dtype)]
        self.time_s = np.array([m.time_s for m in use])
        self.compute_s = np.array([m.flops / device.peak(dtype) for m in use])        # at efficiency 1
        self.memory_s = np.array([m.bytes / device.mem_bandwidth_bytes_per_s for m in use])
        self.cls = np.array([OP_CLASSES.index(m.op_class) if m.flops > 0 and m.op_class in OP_CLASSES else -1
                             for m in use], dtype=int)

    def log_errors(self, p: np.ndarray) -> np.ndarray:
        """p = log of (compute efficiency per class..., memory efficiency, overhead_s)."""
        eff = np.exp(p[:len(OP_CLASSES)])
        compute = np.where(self.cls >= 0, self.compute_s / eff[np.maximum(self.cls, 0)], 0.0)
        predicted = np.maximum(compute, self.memory_s / np.exp(p[-2])) + np.exp(p[-1])
        return np.abs(np.log(predicted / self.time_s))


# Where the coordinate search looks: efficiencies over five decades, overhead from 10 ns to 10 ms.
_EFFICIENCY_GRID = np.log(np.logspace(-4, 1, 401))
_OVERHEAD_GRID = np.log(np.logspace(-8, -2, 401))


def _refine(rows: list[Measurement], device: Device, dtype: str, start: Efficiency) -> tuple[Efficiency, float]:
    """Coordinate search from `start` on a log grid (then a finer one around the best point)."""
    data = _Rows(rows, device, dtype)
    p = np.log([*(start.compute[c] for c in OP_CLASSES), start.memory, start.overhead_s])
    if not len(data.time_s):
        return start, 0.0
    present = set(data.cls.tolist())
    loss = data.log_errors(p).mean()
    for _ in range(4):
        moved = False
        for k in range(len(p)):
            if k < len(OP_CLASSES) and k not in present:
                continue                      # no row of this class: the figure cannot be seen
            grid = _OVERHEAD_GRID if k == len(p) - 1 else _EFFICIENCY_GRID
            step = grid[1] - grid[0]
            for candidates in (grid, None):
                if candidates is None:       # refine around the best point to 1/50 of a grid step
                    candidates = p[k] + np.linspace(-step, step, 101)
                trial = np.repeat(p[None, :], len(candidates), axis=0)
                trial[:, k] = candidates
                losses = np.array([data.log_errors(t).mean() for t in trial])
                best = int(np.argmin(losses))
                if losses[best] < loss - 1e-12:
                    p, loss, moved = trial[best], losses[best], True
        if not moved:
            break
    eff = np.exp(p)
    fitted = Efficiency(compute={c: float(eff[i]) if i in present else start.compute[c] for i, c in enumerate(OP_CLASSES)},
                        memory=float(eff[-2]),
                        overhead_s=float(eff[-1]))
    return fitted, float(np.median(np.expm1(data.log_errors(p))))


def fit_cost_model(db: ProfileDB | str | os.PathLike, dtype: str = "float32",
                   devices: list[str] | None = None) -> CostModel:
    """A CostModel with fitted efficiencies for every device measured in the profile database."""
    fitted = fit_devices(db, dtype, devices)
    return CostModel(per_device={label: f.efficiency for label, f in fitted.items()}, dtype=dtype,
                     runtime={label: f.runtime for label, f in fitted.items() if f.runtime is not None})


def fitted_or_default(db_path: str | os.PathLike | None = None, dtype: str = "float32",
                      devices: list[str] | None = None) -> CostModel:
    """The cost model to plan with: fitted from the profile database when there is one (default
    path: $EDGEWISE_PROFILE_DB or ~/.cache/edgewise/profile.db) for the devices it measured
    (or just `devices`), else the default efficiencies."""
    path = db_path if db_path is not None else default_db_path()
    return fit_cost_model(path, dtype, devices) if os.path.exists(path) else CostModel(dtype=dtype)


def fit_devices(db: ProfileDB | str | os.PathLike, dtype: str = "float32",
                devices: list[str] | None = None) -> dict[str, FittedDevice]:
    """Fitted efficiencies per device label in the database (or just `devices`).

    A label is costed against its catalogue figures (`local` against what was measured there,
    `testbed:<name>` against catalogue device <name>);
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
        # `testbed:<name>` rows were measured inside an emulation of catalogue device <name>
        base = known.get(label) or known.get(label.partition(":")[2])
        if base is not None and rows:
            fitted[label] = replace(fit_efficiency(rows, base, dtype), runtime=fit_runtime(rows))
    return fitted
