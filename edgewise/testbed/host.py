"""How fast one core of this host is, and what the runtime costs on it, as measured into the one profile database."""
from __future__ import annotations

import os
from pathlib import Path

from edgewise.cost.runtime import RuntimeCost, fit_runtime
from edgewise.hardware.profile_db import ProfileDB, default_db_path


def host_core_flops(db_path: str | os.PathLike | None = None) -> float | None:
    """Best float32 matmul/conv FLOP/s of the latest `local` profile, per thread it used; None if never measured."""
    path = Path(db_path) if db_path is not None else default_db_path()
    if not path.exists():
        return None
    with ProfileDB(path, readonly=True) as db:
        runs, device = db.runs("local"), db.measured_device("local")
    if not runs or device is None:
        return None
    return device.peak("float32") / max(1, int(runs[-1].software.get("threads", 1)))


def latest_runtime_cost(label: str = "local", db_path: str | os.PathLike | None = None,
                        cluster: str | None = None) -> RuntimeCost | None:
    """The runtime's own costs measured as device `label` (`local`: one core of this host, CPU
    time), from its latest run that has them (with `cluster`: measured inside that cluster's testbed)."""
    path = Path(db_path) if db_path is not None else default_db_path()
    if not path.exists():
        return None
    with ProfileDB(path, readonly=True) as db:
        for run in reversed(db.runs(label)):
            if cluster is not None and run.software.get("cluster") != cluster:
                continue
            cost = fit_runtime(db.measurements(device=label, kind="runtime", run_id=run.id))
            if cost is not None:
                return cost
    return None
