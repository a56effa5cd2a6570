"""How fast one core of this host is, as `edgewise profile` measured it (the one profile database)."""
from __future__ import annotations

import os
from pathlib import Path

from edgewise.errors import EdgewiseError
from edgewise.hardware.profile_db import ProfileDB, default_db_path


def host_core_flops(db_path: str | os.PathLike | None = None) -> float | None:
    """Best float32 matmul/conv FLOP/s of the latest `local` profile, per thread it used; None if never measured."""
    path = Path(db_path) if db_path is not None else default_db_path()
    if not path.exists():
        return None
    with ProfileDB(path, readonly=True) as db:
        for run in reversed(db.runs("local")):
            device = db.measured_device("local")
            if device is None:
                return None
            threads = int(run.software.get("threads", 1)) or 1
            return device.peak("float32") / threads
    return None


def require_host_core_flops(db_path: str | os.PathLike | None = None) -> float:
    flops = host_core_flops(db_path)
    if flops is None:
        raise EdgewiseError("the testbed needs this host's speed: run `edgewise profile --quick` first")
    return flops
