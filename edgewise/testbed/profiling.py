"""`edgewise profile --testbed-device NODE`: measure inside one emulated device.

The same `edgewise profile` runs inside the device's namespace and CPU quota, timing by CPU
time over the quota (profiler.Clock) and dividing by the testbed's dilation; its rows are
recorded under the label `testbed:<device>` in the one profile database. Fitting that label against the catalogue device gives the
efficiencies with which to predict runs on the testbed (`testbed_cost_model`).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace

from edgewise.cost.fit import fit_devices
from edgewise.cost.roofline import CostModel
from edgewise.errors import EdgewiseError
from edgewise.hardware.cluster import Cluster
from edgewise.hardware.profile_db import ProfileDB, default_db_path
from edgewise.testbed import netns
from edgewise.testbed.commands import can_emulate
from edgewise.testbed.drive import build_testbed
from edgewise.testbed.host import host_core_flops, host_runtime_cost
from edgewise.testbed.layout import plan_layout

LABEL_PREFIX = "testbed:"
# What the rest of the fleet runs while one device is profiled: the model's forward pass (or
# matmuls when no model is profiled), one thread, until killed.
_BUSY = """
import sys, torch
torch.set_num_threads(1)
if sys.argv[1]:
    from edgewise.zoo.spec import load_model
    loaded = load_model(sys.argv[1])
    step = lambda: loaded.model(*loaded.example_inputs)
else:
    a = torch.randn(256, 256)
    step = lambda: a @ a
with torch.inference_mode():
    while True:
        step()
"""


def testbed_label(device_name: str) -> str:
    return f"{LABEL_PREFIX}{device_name}"


def profile_in_testbed(cluster: Cluster, node: str, model: str | None, quick: bool, repeats: int | None,
                       db: str | None) -> dict:
    """Run `edgewise profile` inside `node`'s emulated device, the rest of the fleet busy; returns its JSON result."""
    reason = can_emulate()
    if reason:
        raise EdgewiseError(f"--testbed-device: {reason.split(';')[0]}")
    names = [n.name for n in cluster.nodes]
    if node not in names:
        raise EdgewiseError(f"--testbed-device {node!r}: not a device of cluster {cluster.name!r} ({', '.join(names)})")
    layout = build_testbed(cluster)
    try:
        slot = layout.slot(node)
        cmd = [sys.executable, "-m", "edgewise", "profile", *([model] if model else []), "--json",
               "--db", str(db or default_db_path()), "--record-as", testbed_label(cluster.node(node).device.name),
               "--time-dilation", str(layout.dilation), "--threads", str(slot.threads),
               "--cpu-quota", str(slot.cpu_quota_cores)]
        if quick:
            cmd.append("--quick")
        if repeats:
            cmd += ["--repeats", str(repeats)]
        # The other devices work meanwhile, each within its own quota, as they do in a pipelined
        # run: they share this host's caches and memory bandwidth, which an idle fleet would not
        # (measured here: edge-fleet and pi-fleet stages ran 15-40% slower in runs than profiled on an
        # idle fleet).
        busy = [subprocess.Popen(netns.launch_argv(layout, other, [sys.executable, "-c", _BUSY, model or ""]),
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                for other in names if other != node]
        try:
            proc = subprocess.run(netns.launch_argv(layout, node, cmd), capture_output=True, text=True)
        finally:
            for b in busy:
                b.kill()
                b.wait()
    finally:
        netns.down()
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines() or ["no output"]
        raise EdgewiseError(f"profiling inside {node!r} failed: {lines[-1]}")
    return json.loads(proc.stdout)


def testbed_cost_model(cluster: Cluster, base: CostModel, model: str | None = None) -> CostModel:
    """`base` with what was measured inside emulated devices (fitted efficiencies and, for
    `model`, each op's measured time) and the runtime's own costs there, from the host's."""
    labels = {testbed_label(d): d for d in sorted({n.device.name for n in cluster.nodes})}
    path = default_db_path()
    if not path.exists():
        return base
    fitted = fit_devices(path, base.dtype, list(labels))
    per_device = {**base.per_device, **{labels[label]: f.efficiency for label, f in fitted.items()}}
    runtime = dict(base.runtime)
    host_flops, host_runtime = host_core_flops(path), host_runtime_cost(path)
    if host_flops and host_runtime:
        # The testbed's rule for CPU work: what one host core does in t, an emulated device does in
        # t / min(its quota, one core); in the cluster's own time that is t / min(dilation, want).
        layout = plan_layout(cluster, host_flops, os.cpu_count() or 1)
        for node in cluster.nodes:
            want = node.device.peak("float32") / host_flops
            runtime[node.device.name] = host_runtime.slower(1 / min(layout.dilation, want))
    measured = dict(base.measured_s)
    if model is not None:
        with ProfileDB(path, readonly=True) as db:
            for label, name in labels.items():
                for m in db.measurements(device=label, kind="op"):
                    if m.model == model:
                        measured[(name, m.op_name)] = m.time_s   # later runs overwrite earlier ones
    return replace(base, per_device=per_device, measured_s=measured, runtime=runtime)
