"""Running the `ip`, `tc` and cgroup operations the testbed needs, with one-line errors."""
from __future__ import annotations

import os
import shutil
import subprocess

from edgewise.errors import EdgewiseError


def can_emulate() -> str | None:
    """None when this host can build a testbed, else the one-line reason it cannot."""
    if os.geteuid() != 0:
        return "the testbed needs root (network namespaces, tc, cgroups); running over loopback unshaped"
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            return f"the testbed needs `{tool}` (iproute2); running over loopback unshaped"
    from edgewise.testbed.cgroups import host_hierarchy   # that module writes through this one
    if host_hierarchy() is None:
        return ("the testbed needs the cpu and cpuset cgroup controllers (v1 at /sys/fs/cgroup/cpu, "
                "or v2 offering them); running unshaped")
    return None


def sh(*args: str, check: bool = True) -> str:
    """Run one command; on failure raise EdgewiseError naming the command and its first error line."""
    proc = subprocess.run(args, capture_output=True, text=True)
    if check and proc.returncode != 0:
        first = (proc.stderr.strip() or proc.stdout.strip() or f"exit {proc.returncode}").splitlines()[0]
        raise EdgewiseError(f"testbed: `{' '.join(args)}` failed: {first}")
    return proc.stdout


def write_file(path: str, value: str) -> None:
    try:
        with open(path, "w") as f:
            f.write(value)
    except OSError as e:
        raise EdgewiseError(f"testbed: cannot write {value!r} to {path}: {e.strerror}") from e
