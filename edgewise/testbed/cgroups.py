"""The emulated devices' CPU quotas and cpusets, in whichever cgroup hierarchy the host has.

cgroup v1 keeps one hierarchy per controller (`cpu/`, `cpuset/`); v2 (the default of current
distributions, Ubuntu 22.04 and later among them) one unified tree, in which a parent hands its
children the controllers named in its `cgroup.subtree_control`. Either way each device gets a
cgroup `<name>` under one `edgewise` cgroup per hierarchy, with its quota per period and its
cores, and a process enters it by writing its pid there.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgewise.testbed.commands import write_file
from edgewise.testbed.layout import PREFIX

ROOT = Path("/sys/fs/cgroup")
TOP = PREFIX.rstrip("-")
CONTROLLERS = ("cpu", "cpuset")


@dataclass(frozen=True)
class DeviceCgroup:
    """One device's cgroup settings."""
    name: str
    quota_us: int
    period_us: int
    cpus: tuple[int, ...]


@dataclass(frozen=True)
class Hierarchy:
    version: int          # 1 or 2
    root: Path = ROOT

    @property
    def tops(self) -> list[Path]:
        """The testbed's own cgroups, one per hierarchy it uses."""
        if self.version == 1:
            return [self.root / c / TOP for c in CONTROLLERS]
        return [self.root / TOP]

    @property
    def procs(self) -> str:
        """The file of a cgroup that lists (and takes) its processes."""
        return "tasks" if self.version == 1 else "cgroup.procs"

    def procs_files(self, name: str) -> list[Path]:
        """Where a pid is written to put that process in device `name`'s cgroups."""
        return [top / name / self.procs for top in self.tops]

    def make(self, devices: list[DeviceCgroup]) -> None:
        if self.version == 1:
            self._make_v1(devices)
        else:
            self._make_v2(devices)

    def _make_v1(self, devices: list[DeviceCgroup]) -> None:
        cpu, cpuset = self.tops
        cpu.mkdir(exist_ok=True)
        cpuset.mkdir(exist_ok=True)
        # cpuset children may only use what the parent has; the parent starts empty in cgroup v1.
        for f in ("cpuset.cpus", "cpuset.mems"):
            write_file(str(cpuset / f), (cpuset.parent / f).read_text().strip())
        for d in devices:
            (cpu / d.name).mkdir(exist_ok=True)
            write_file(str(cpu / d.name / "cpu.cfs_period_us"), str(d.period_us))
            write_file(str(cpu / d.name / "cpu.cfs_quota_us"), str(d.quota_us))
            (cpuset / d.name).mkdir(exist_ok=True)
            write_file(str(cpuset / d.name / "cpuset.cpus"), ",".join(map(str, d.cpus)))
            write_file(str(cpuset / d.name / "cpuset.mems"), (cpuset / "cpuset.mems").read_text().strip())

    def _make_v2(self, devices: list[DeviceCgroup]) -> None:
        (top,) = self.tops
        enable = " ".join(f"+{c}" for c in CONTROLLERS)
        write_file(str(self.root / "cgroup.subtree_control"), enable)
        top.mkdir(exist_ok=True)
        write_file(str(top / "cgroup.subtree_control"), enable)
        for d in devices:
            (top / d.name).mkdir(exist_ok=True)
            write_file(str(top / d.name / "cpu.max"), f"{d.quota_us} {d.period_us}")
            write_file(str(top / d.name / "cpuset.cpus"), ",".join(map(str, d.cpus)))

    def members(self) -> list[tuple[Path, list[int]]]:
        """Each device cgroup the testbed left, with the pids in it (for teardown)."""
        out = []
        for top in self.tops:
            if top.is_dir():
                for sub in sorted(p for p in top.iterdir() if p.is_dir()):
                    out.append((sub, [int(p) for p in (sub / self.procs).read_text().split()]))
        return out


def host_hierarchy(root: Path = ROOT) -> Hierarchy | None:
    """The hierarchy whose cpu and cpuset controllers this host offers, or None."""
    if all((root / c).is_dir() for c in CONTROLLERS):
        return Hierarchy(1, root)
    try:
        offered = set((root / "cgroup.controllers").read_text().split())
    except OSError:
        return None
    return Hierarchy(2, root) if offered >= set(CONTROLLERS) else None
