"""The one profile database: every measurement `edgewise profile` makes, in embedded SQLite.

A *run* is one profiling session on one device (the host it ran on, what the device is, its
memory, the software). A *measurement* is one timed thing in a run: a microbenchmark (matmul,
conv, memory copy, per-call overhead) or one op of a model. Rows are keyed by device label,
kind, op class, dtype and shape, with the FLOPs and bytes of the work and its median time, so
later kinds (collective sweeps, testbed devices, learned-predictor features) fit the same table;
what only they need goes in `extra` (JSON). Cost models `fit` from here (cost/fit.py).

The schema is versioned with SQLite's `user_version`; `_MIGRATIONS[i]` takes a database from
version i to i + 1, so an older file is upgraded in place and a newer one is refused.
"""
from __future__ import annotations

import json
import os
import sqlite3
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

from edgewise.errors import EdgewiseError
from edgewise.hardware.cluster import Device

SCHEMA_VERSION = 1

_MIGRATIONS = [
    """
    CREATE TABLE runs (
        id           INTEGER PRIMARY KEY,
        started_at   TEXT NOT NULL,      -- ISO 8601, UTC
        host         TEXT NOT NULL,      -- hostname of the machine that measured
        device       TEXT NOT NULL,      -- device label: 'local', 'local-cuda', a testbed node, ...
        device_kind  TEXT NOT NULL,      -- cpu | gpu | npu
        device_model TEXT NOT NULL,      -- what the device is, e.g. the CPU or GPU name
        memory_bytes INTEGER NOT NULL,
        software     TEXT NOT NULL,      -- JSON: torch version, threads, ...
        command      TEXT NOT NULL
    );
    CREATE TABLE measurements (
        id        INTEGER PRIMARY KEY,
        run_id    INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        device    TEXT NOT NULL,         -- the run's device label, repeated for simple queries
        kind      TEXT NOT NULL,         -- matmul | conv | memory | overhead | op (later: collective, ...)
        op_class  TEXT NOT NULL,         -- cost class: matmul | conv | attention | other | memory
        dtype     TEXT NOT NULL,
        shape     TEXT NOT NULL,         -- JSON: input shapes
        flops     REAL NOT NULL,
        bytes     REAL NOT NULL,         -- bytes read and written
        time_s    REAL NOT NULL,         -- median over `repeats` timed calls
        repeats   INTEGER NOT NULL,
        model     TEXT NOT NULL DEFAULT '',  -- model spec, for kind = op
        op_name   TEXT NOT NULL DEFAULT '',  -- exported node name (== OpGraph Op.name)
        op_kind   TEXT NOT NULL DEFAULT '',  -- aten overload, e.g. aten.conv2d.default
        extra     TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX measurements_by_key ON measurements(device, kind, op_class, dtype);
    """,
]


def default_db_path() -> Path:
    """$EDGEWISE_PROFILE_DB, else ~/.cache/edgewise/profile.db."""
    env = os.environ.get("EDGEWISE_PROFILE_DB")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "edgewise" / "profile.db"


@dataclass(frozen=True)
class Measurement:
    kind: str
    op_class: str
    dtype: str
    time_s: float
    flops: float = 0.0
    bytes: float = 0.0
    shape: tuple[tuple[int, ...], ...] = ()
    repeats: int = 1
    model: str = ""
    op_name: str = ""
    op_kind: str = ""
    extra: dict = field(default_factory=dict)
    device: str = ""                    # filled in when read back; set from the run when written


@dataclass(frozen=True)
class Run:
    device: str
    device_kind: str
    device_model: str
    memory_bytes: int
    host: str
    command: str = ""
    software: dict = field(default_factory=dict)
    started_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    id: int | None = None


class ProfileDB:
    """An open profile database. `ProfileDB(path)` creates or upgrades it; `readonly=True` never writes."""

    def __init__(self, path: str | os.PathLike, readonly: bool = False):
        self.path = Path(path).expanduser()
        try:
            if readonly:
                self._conn = sqlite3.connect(self.path.resolve().as_uri() + "?mode=ro", uri=True)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._conn = sqlite3.connect(self.path)
            self._conn.execute("PRAGMA foreign_keys = ON")
            self._check_and_migrate(readonly)
        except sqlite3.DatabaseError as e:
            raise EdgewiseError(f"{self.path}: not a usable edgewise profile database ({e})") from e
        except OSError as e:
            raise EdgewiseError(f"{self.path}: cannot open the profile database ({e.strerror})") from e

    def __enter__(self) -> "ProfileDB":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._conn.close()

    def _check_and_migrate(self, readonly: bool) -> None:
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        tables = self._conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if version == 0 and tables:
            raise EdgewiseError(f"{self.path}: an SQLite file but not an edgewise profile database")
        if version > SCHEMA_VERSION:
            raise EdgewiseError(f"{self.path}: profile database schema {version} is newer than this "
                                f"edgewise reads ({SCHEMA_VERSION}); upgrade edgewise or use --db")
        if version == SCHEMA_VERSION:
            return
        if readonly:
            if version == 0:                  # an empty file: read it as an empty database
                self._conn.close()
                self._conn = sqlite3.connect(":memory:")
                self._check_and_migrate(readonly=False)
            return
        with self._conn:
            for v in range(version, SCHEMA_VERSION):
                self._conn.executescript(_MIGRATIONS[v])
            self._conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @property
    def schema_version(self) -> int:
        return self._conn.execute("PRAGMA user_version").fetchone()[0]

    def record(self, run: Run, rows: Iterable[Measurement]) -> int:
        """Store a run and its measurements in one transaction (all or nothing); returns the run id."""
        with self._conn:
            cur = self._conn.execute(
                "INSERT INTO runs (started_at, host, device, device_kind, device_model, memory_bytes, "
                "software, command) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (run.started_at, run.host, run.device, run.device_kind, run.device_model,
                 int(run.memory_bytes), json.dumps(run.software, sort_keys=True), run.command))
            run_id = cur.lastrowid
            self._conn.executemany(
                "INSERT INTO measurements (run_id, device, kind, op_class, dtype, shape, flops, bytes, "
                "time_s, repeats, model, op_name, op_kind, extra) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(run_id, run.device, m.kind, m.op_class, m.dtype, json.dumps([list(s) for s in m.shape]),
                  float(m.flops), float(m.bytes), float(m.time_s), int(m.repeats), m.model, m.op_name,
                  m.op_kind, json.dumps(m.extra, sort_keys=True)) for m in rows])
        return run_id

    def runs(self, device: str | None = None) -> list[Run]:
        """Runs, oldest first; only those of `device` when given."""
        sql = ("SELECT id, started_at, host, device, device_kind, device_model, memory_bytes, software, "
               "command FROM runs")
        args: tuple = ()
        if device is not None:
            sql, args = sql + " WHERE device = ?", (device,)
        return [Run(id=r[0], started_at=r[1], host=r[2], device=r[3], device_kind=r[4], device_model=r[5],
                    memory_bytes=r[6], software=json.loads(r[7]), command=r[8])
                for r in self._conn.execute(sql + " ORDER BY id", args)]

    def devices(self) -> list[str]:
        """Device labels that have measurements."""
        return [r[0] for r in self._conn.execute("SELECT DISTINCT device FROM measurements ORDER BY device")]

    def measurements(self, device: str | None = None, kind: str | None = None,
                     dtype: str | None = None, run_id: int | None = None) -> list[Measurement]:
        where, args = [], []
        for column, value in (("device", device), ("kind", kind), ("dtype", dtype), ("run_id", run_id)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        sql = ("SELECT device, kind, op_class, dtype, shape, flops, bytes, time_s, repeats, model, op_name, "
               "op_kind, extra FROM measurements")
        if where:
            sql += " WHERE " + " AND ".join(where)
        return [Measurement(device=r[0], kind=r[1], op_class=r[2], dtype=r[3],
                            shape=tuple(tuple(s) for s in json.loads(r[4])), flops=r[5], bytes=r[6],
                            time_s=r[7], repeats=r[8], model=r[9], op_name=r[10], op_kind=r[11],
                            extra=json.loads(r[12]))
                for r in self._conn.execute(sql + " ORDER BY id", args)]

    def measured_device(self, label: str) -> Device | None:
        """The device `label` as its latest microbenchmark run measured it, or None if never measured.

        Peak FLOP/s per dtype is the best matmul or conv throughput achieved, memory bandwidth
        the best copy rate: measured figures, so a plan on a cluster naming `local` uses them.
        """
        for run in reversed(self.runs(label)):
            rows = self.measurements(run_id=run.id)
            peak: dict[str, float] = defaultdict(float)
            for m in rows:
                if m.kind in ("matmul", "conv") and m.time_s > 0:
                    peak[m.dtype] = max(peak[m.dtype], m.flops / m.time_s)
            copy = [m.bytes / m.time_s for m in rows if m.kind == "memory" and m.time_s > 0]
            if not peak or not copy:
                continue                    # a run of per-op timings only: look further back
            where = f"`edgewise profile` on host {run.host} at {run.started_at} ({run.device_model})"
            sources = {f"peak_flops_per_s.{d}": f"measured: best matmul/conv throughput, {where}" for d in peak}
            sources |= {"memory_bytes": f"measured: memory the device reports, {where}",
                        "mem_bandwidth_bytes_per_s": f"measured: best tensor-copy rate, {where}",
                        "idle_power_w": "not measured: edgewise profile does not read power",
                        "busy_power_w": "not measured: edgewise profile does not read power"}
            return Device(name=label, kind=run.device_kind, summary=f"measured: {run.device_model}",
                          peak_flops_per_s=dict(peak), memory_bytes=run.memory_bytes,
                          mem_bandwidth_bytes_per_s=max(copy), sources=sources)
        return None
