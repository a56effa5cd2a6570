"""`edgewise profile --testbed-device NODE`: measure inside one emulated device.

The same `edgewise profile` runs inside the device's namespace and CPU quota, timing by CPU
time over the quota (profiler.Clock) and dividing by the testbed's dilation; its rows are
recorded under the label `testbed:<device>` in the one profile database. Fitting that label against the catalogue device gives the
efficiencies with which to predict runs on the testbed (`testbed_cost_model`).
"""
from __future__ import annotations

import json
import math
import os
import socket
import statistics
import subprocess
import sys
from dataclasses import asdict, astuple, replace
from typing import Callable

import torch

from edgewise.cost.fit import fit_devices
from edgewise.cost.roofline import CostModel
from edgewise.cost.runtime import FREE, RuntimeCost, StageCosts
from edgewise.errors import EdgewiseError
from edgewise.graph.opgraph import OpGraph
from edgewise.hardware.cluster import Cluster
from edgewise.hardware.profile_db import Measurement, ProfileDB, Run, default_db_path
from edgewise.plan.schema import Plan
from edgewise.runtime import costs
from edgewise.testbed import crowding, netns
from edgewise.testbed.commands import can_emulate
from edgewise.testbed.drive import build_testbed
from edgewise.testbed.host import host_core_flops, latest_runtime_cost
from edgewise.testbed.layout import Layout, plan_layout

LABEL_PREFIX = "testbed:"
WAKE_SPAN_S = 3.0        # host seconds a stream of the model-cost probe aims at
WAKE_FEWEST = 20         # inputs a stream has at least (the first fifth settles)
STAGE_COSTS = ("wake", "spread")    # what a stage's own probe records (cost/runtime.py, StageCosts)


def testbed_label(device_name: str) -> str:
    return f"{LABEL_PREFIX}{device_name}"


def profile_in_testbed(cluster: Cluster, node: str, model: str | None, quick: bool, repeats: int | None,
                       db: str | None, runtime: bool = True, program: str | None = None, rounds: int = 1) -> dict:
    """Run `edgewise profile` inside `node`'s emulated device `rounds` times, each in a fresh
    process, then (with `runtime`) measure the runtime's own costs there, and with `program`
    (`model` saved by torch.export.save) what the model costs the runtime (a step woken for each
    input, an input served alone); returns the last profile's JSON result.

    Predictions take each op's median over the profiles (`_op_times`): one process's forward
    can read a quarter slower than the next one's (resnet18 on pi-fleet's emulated Pi: 186 ms
    where the same Pi read 146 and 154 ms in the other clusters and the runs took 142).

    The rest of the fleet stays idle. Profiling with it running the model (as in a pipelined
    run) was tried, to count the host's caches shared with the other devices; with the
    allocator settled (proc.steady_allocations) that measured the Pis 5 to 40% slower than
    pipelined runs found them (mobilenet_v2 on an emulated Pi: 75-93 ms busy, 64 ms idle, 60 ms
    in a run), because a run keeps the other devices less busy than a profile loop does."""
    if rounds < 1:
        raise EdgewiseError(f"profile: rounds must be at least 1, got {rounds}")
    layout = _testbed_for(cluster, node)
    try:
        slot = layout.slot(node)
        cmd = [sys.executable, "-m", "edgewise", "profile", *([model] if model else []), "--json",
               "--db", str(db or default_db_path()), "--record-as", testbed_label(cluster.node(node).device.name),
               "--record-cluster", cluster.name,
               "--time-dilation", str(layout.dilation), "--threads", str(slot.threads),
               "--cpu-quota", str(slot.cpu_quota_cores)]
        if quick:
            cmd.append("--quick")
        if repeats:
            cmd += ["--repeats", str(repeats)]
        for _ in range(rounds):
            proc = subprocess.run(netns.launch_argv(layout, node, cmd), capture_output=True, text=True)
            if proc.returncode != 0:
                lines = proc.stderr.strip().splitlines() or ["no output"]
                raise EdgewiseError(f"profiling inside {node!r} failed: {lines[-1]}")
        result = json.loads(proc.stdout)
        if runtime:
            _measure_runtime(cluster, layout, node, db)
        if model and program:
            _measure_model_costs(cluster, layout, node, model, program, db)
            _measure_crowding(cluster, layout, node, model, program, db)
    finally:
        netns.down()
    # the runtime's costs that predictions for this cluster use (the profile's own JSON fits
    # every cluster's rows of the label together)
    label = testbed_label(cluster.node(node).device.name)
    inside = latest_runtime_cost(label, db or default_db_path(), cluster.name)
    if inside is not None and model:
        with ProfileDB(db or default_db_path(), readonly=True) as store:
            inside = replace(inside, **{f"{what}_s": t for what, t in _model_rows(store, label, model, cluster.name).items()})
    return {**result, "runtime": asdict(inside) if inside else None}


def measure_runtime_in_testbed(cluster: Cluster, node: str, db: str | None) -> RuntimeCost | None:
    """Only the runtime's own costs inside `node`, as `profile_in_testbed` measures them after
    the ops: to measure them again (after a change to what the probe measures) without the ops."""
    _on_testbed(cluster, node, lambda layout: _measure_runtime(cluster, layout, node, db))
    return latest_runtime_cost(testbed_label(cluster.node(node).device.name), db or default_db_path(), cluster.name)


def _on_testbed(cluster: Cluster, node: str, measure: Callable[[Layout], None]) -> None:
    """`measure` on the cluster's testbed, built once `node` is known to be one of its devices,
    and torn down after."""
    layout = _testbed_for(cluster, node)
    try:
        measure(layout)
    finally:
        netns.down()


def _testbed_for(cluster: Cluster, node: str) -> Layout:
    """The cluster's testbed, built, once `node` is known to be one of its devices."""
    check_testbed_device(cluster, node)
    return build_testbed(cluster)


def check_testbed_device(cluster: Cluster, node: str) -> None:
    """A one-line error unless this host can emulate and `node` is a device of `cluster`."""
    reason = can_emulate()
    if reason:
        raise EdgewiseError(f"--testbed-device: {reason.split(';')[0]}")
    names = [n.name for n in cluster.nodes]
    if node not in names:
        raise EdgewiseError(f"--testbed-device {node!r}: not a device of cluster {cluster.name!r} ({', '.join(names)})")


def _measure_runtime(cluster: Cluster, layout: Layout, node: str, db: str | None) -> None:
    """The runtime's own costs inside `node`, with a peer in another emulated device across the
    emulated link (so throttling, the worker loop and gloo on a slice of a core are all in them),
    recorded under the device's label in the cluster's own time; nothing for a one-device cluster.

    The peer runs behind its links but without its CPU quota, so that `node` is the stream's
    bottleneck: that is when its costs set a run's pace, and a sender that keeps waiting for a
    slower receiver spends more per message on the waits (an emulated Pi's 4 KiB send: 0.19 to
    0.24 ms of host CPU with the peer free, 0.32 with the peer a throttled Pi, and about 0.2 in
    a run of mlp on pi-fleet where that Pi feeds three others)."""
    if (ends := _ends(layout, cluster, node)) is None:
        return
    rows = [replace(m, time_s=m.time_s / layout.dilation)
            for m in costs.measure(quota_cores=layout.slot(node).cpu_quota_cores, ends=ends)]
    _record(cluster, layout, node, rows, f"the runtime's own costs inside {node!r} of {cluster.name}", db)


def measure_model_costs_in_testbed(cluster: Cluster, node: str, model: str, program: str, db: str | None) -> None:
    """Only what `model` costs the runtime inside `node`, as `profile_in_testbed` measures it
    after the ops (which must have been profiled there): to measure it again without them."""
    _on_testbed(cluster, node, lambda layout: _measure_model_costs(cluster, layout, node, model, program, db))


def _measure_model_costs(cluster: Cluster, layout: Layout, node: str, model: str, program: str, db: str | None) -> None:
    """What `model` costs `node` beyond its back-to-back profile (runtime/costs.py, measure_wake):
    a step woken for each input, a message taken in then and an input served alone, as "runtime"
    rows of op_class "wake", "received", "alone" and "spread" for the model, in the cluster's own time;
    nothing for a one-device cluster.

    The streams span about WAKE_SPAN_S of the host's time each (as the profile timed the model
    here), within the probe's bounds: 120 inputs of resnet18 on an emulated Pi take 40 s."""
    if (ends := _ends(layout, cluster, node)) is None:
        return
    label = testbed_label(cluster.node(node).device.name)
    with ProfileDB(db or default_db_path(), readonly=True) as store:
        step_s = sum(statistics.median(ts) for ts in _op_times(store, label, model, cluster.name).values())
    found = costs.measure_wake(program, quota_cores=layout.slot(node).cpu_quota_cores, ends=ends,
                               inputs=_wake_inputs(step_s, layout))
    rows = [Measurement(kind="runtime", op_class=what, dtype="float32", time_s=t / layout.dilation,
                        repeats=costs.ROUNDS, model=model)
            for what, t in zip(costs.MODEL_COSTS, astuple(found))]
    _record(cluster, layout, node, rows, f"what {model} costs the runtime inside {node!r} of {cluster.name}", db)


def measure_stage_costs_in_testbed(plan: Plan, program: str, db: str | None,
                                   progress: Callable[[str], None] = lambda what: None) -> int:
    """What each stage of `plan` that takes its input in from another device costs the runtime
    inside one device of each type that holds it (of `_measure_model_costs`' figures, those that
    depend on the stage, STAGE_COSTS: a step woken for each input and how much it varies), as
    "runtime" rows for the plan's model whose op_name is the stage's (`stage_key`); `program` is
    the model saved by torch.export.save. Returns how many (stage, device type) pairs it measured.

    The probe's model is the stage as a worker runs it, on the values it receives in a run.
    With the whole model as the step, a small stage was charged too much: in runs over
    slow-link, an emulated Pi's last two of m5's ops took 0.32 ms a step and the last one of
    mlp_mixer's 0.53, where the whole model's wake-up cost alone was 0.67 and 1.79; their own
    probes measured 0.24 and 0.26 ms of wake-up."""
    cluster = plan.cluster
    todo = [(i, node) for i, stage in enumerate(plan.stages) if i > 0
            for node in {cluster.node(d).device.name: d for d in reversed(stage.devices)}.values()]
    if not todo:
        return 0

    def measure(layout: Layout) -> None:
        for i, node in todo:
            progress(f"stage {i} inside {node!r}")
            with costs.saved_stage_program(program, plan, i) as stage_program:
                _measure_stage_costs(cluster, layout, node, plan, i, stage_program, db)
    _on_testbed(cluster, todo[0][1], measure)
    return len(todo)


def stage_key(ops: list[str]) -> str:
    """A stage's name in the profile database: its first and last op."""
    return f"{ops[0]}..{ops[-1]}"


def _measure_stage_costs(cluster: Cluster, layout: Layout, node: str, plan: Plan, i: int, program: str,
                         db: str | None) -> None:
    if (ends := _ends(layout, cluster, node)) is None:
        return
    label = testbed_label(cluster.node(node).device.name)
    ops = plan.stages[i].ops
    with ProfileDB(db or default_db_path(), readonly=True) as store:
        times = _op_times(store, label, plan.model, cluster.name)
    step_s = sum(statistics.median(times[op]) for op in ops if op in times)
    found = costs.measure_wake(program, quota_cores=layout.slot(node).cpu_quota_cores, ends=ends,
                               inputs=_wake_inputs(step_s, layout), alone=False)
    rows = [Measurement(kind="runtime", op_class=what, dtype="float32", time_s=t / layout.dilation,
                        repeats=costs.ROUNDS, model=plan.model, op_name=stage_key(ops))
            for what, t in zip(costs.MODEL_COSTS, astuple(found)) if what in STAGE_COSTS]
    _record(cluster, layout, node, rows, f"what stage {i} of {plan.model} costs the runtime inside {node!r} "
                                         f"of {cluster.name}", db)


def _wake_inputs(step_s: float, layout: Layout) -> int:
    """Inputs for a model-cost probe's stream of steps of `step_s` (cluster time) to span about
    WAKE_SPAN_S of the host's time, within the probe's bounds."""
    return max(WAKE_FEWEST, min(costs.WAKE_INPUTS, math.ceil(WAKE_SPAN_S / max(step_s * layout.dilation, 1e-9))))


def measure_crowding_in_testbed(cluster: Cluster, node: str, model: str, program: str, db: str | None) -> None:
    """Only how much a busy fleet slows `model` inside `node`, as `profile_in_testbed` measures
    it after the model's costs: to measure it again without the rest."""
    _on_testbed(cluster, node, lambda layout: _measure_crowding(cluster, layout, node, model, program, db))


def _measure_crowding(cluster: Cluster, layout: Layout, node: str, model: str, program: str, db: str | None) -> None:
    """`model`'s ops inside `node` with the rest of the fleet stopped and busy (crowding.py), as
    rows of kind "crowding", op_class "quiet" or "crowded", in the cluster's own time; nothing
    for a one-device cluster, which has no neighbours."""
    if len(layout.slots) < 2:
        return
    found = crowding.measure_crowding(layout, node, program)
    rows = [Measurement(kind="crowding", op_class=state, dtype="float32", time_s=t / layout.dilation,
                        repeats=crowding.ROUNDS, model=model, op_name=op)
            for state, times in (("quiet", found.quiet_s), ("crowded", found.crowded_s)) for op, t in times.items()]
    _record(cluster, layout, node, rows, f"how a busy fleet slows {model} inside {node!r} of {cluster.name}", db)


def _ends(layout: Layout, cluster: Cluster, node: str) -> costs.Ends | None:
    """`node` measuring, with a peer in another emulated device across the emulated link; None
    in a one-device cluster."""
    peer = next((n.name for n in cluster.nodes if n.name != node), None)
    if peer is None:
        return None
    return costs.Ends(measurer=lambda argv: netns.launch_argv(layout, node, argv),
                      peer=lambda argv: netns.launch_argv(layout, peer, argv, throttled=False),
                      measurer_address=layout.slot(node).address, peer_address=layout.slot(peer).address,
                      ifname="eth0")


def _record(cluster: Cluster, layout: Layout, node: str, rows: list[Measurement], what: str, db: str | None) -> None:
    label = testbed_label(cluster.node(node).device.name)
    run = Run(device=label, device_kind="cpu", device_model=f"emulated in cluster {cluster.name}",
              memory_bytes=0, host=socket.gethostname(), command=what,
              software={"torch": torch.__version__, "threads": 1, "dilation": layout.dilation,
                        "cluster": cluster.name})
    with ProfileDB(db or default_db_path()) as store:
        store.record(run, rows)


def testbed_cost_model(cluster: Cluster, base: CostModel, model: str | None = None) -> CostModel:
    """`base` with what was measured inside emulated devices: fitted efficiencies, for `model`
    each op's measured time, and the runtime's own costs inside this cluster (the host's,
    scaled, where a device's never were)."""
    labels = {testbed_label(d): d for d in sorted({n.device.name for n in cluster.nodes})}
    path = default_db_path()
    if not path.exists():
        return base
    fitted = fit_devices(path, base.dtype, list(labels))
    per_device = {**base.per_device, **{labels[label]: f.efficiency for label, f in fitted.items()}}
    runtime = dict(base.runtime)
    host_flops, host_runtime = host_core_flops(path), latest_runtime_cost("local", path)
    if host_flops and host_runtime:
        # Where they were not measured inside the device, the testbed's rule for CPU work: what one
        # host core does in t, an emulated device does in t / min(its quota, one core); in the
        # cluster's own time that is t / min(dilation, want).
        layout = plan_layout(cluster, host_flops, os.cpu_count() or 1)
        for node in cluster.nodes:
            want = node.device.peak("float32") / host_flops
            runtime[node.device.name] = host_runtime.slower(1 / min(layout.dilation, want))
    for label, name in labels.items():
        # measured inside this cluster's testbed: a device's slice of a core and its links
        # change them (an emulated Pi sent 256 KiB for 1.7 ms of CPU over pi-fleet's gigabit
        # links, 5.4 ms over slow-link's 10 Mbit/s)
        if (inside := latest_runtime_cost(label, path, cluster.name)) is not None:
            runtime[name] = inside
    measured = dict(base.measured_s)
    if model is not None:
        with ProfileDB(path, readonly=True) as db:
            for label, name in labels.items():
                times = _op_times(db, label, model, cluster.name)
                measured.update({(name, op): statistics.median(ts) for op, ts in times.items()})
                found = _model_rows(db, label, model, cluster.name)
                stages = _stage_rows(db, label, model, cluster.name)
                if found or stages:
                    runtime[name] = replace(runtime.get(name, FREE), **{f"{what}_s": t for what, t in found.items()},
                                            stages=stages)
    return replace(base, per_device=per_device, measured_s=measured, runtime=runtime)


def testbed_prediction_cost(plan: Plan, graph: OpGraph, base: CostModel) -> CostModel:
    """What predicts `plan`'s run on the testbed: `testbed_cost_model`, with each device type's
    ops slowed as much as the rest of the fleet, busy as the simulated run keeps it, slowed them
    when measured (crowding.py); as `testbed_cost_model` where that was not measured."""
    cluster = plan.cluster
    cost = testbed_cost_model(cluster, base, plan.model)
    path = default_db_path()
    host_flops = host_core_flops(path) if path.exists() else None
    if not host_flops:
        return cost
    with ProfileDB(path, readonly=True) as db:
        slowdown = {name: ratios for name in sorted({n.device.name for n in cluster.nodes})
                    if (ratios := _crowding(db, testbed_label(name), plan.model, cluster.name))}
    if not slowdown:
        return cost
    return crowding.crowd_cost_model(cost, plan, graph, plan_layout(cluster, host_flops, os.cpu_count() or 1), slowdown)


def _crowding(db: ProfileDB, label: str, model: str, cluster: str) -> dict[str, float]:
    """Each op's crowded-to-quiet ratio for `model` as `label` in `cluster`'s testbed, as last measured."""
    for run in reversed(db.runs(label)):
        if run.software.get("cluster") == cluster:
            rows = [m for m in db.measurements(device=label, kind="crowding", run_id=run.id) if m.model == model]
            quiet = {m.op_name: m.time_s for m in rows if m.op_class == "quiet"}
            crowded = {m.op_name: m.time_s for m in rows if m.op_class == "crowded"}
            if quiet:
                return {op: crowded[op] / t for op, t in quiet.items() if t > 0 and op in crowded}
    return {}


def _model_rows(db: ProfileDB, label: str, model: str, cluster: str) -> dict[str, float]:
    """The runtime's costs of `model` as `label` in `cluster`'s testbed (costs.MODEL_COSTS), each as
    last measured."""
    return _cost_rows(db, label, model, cluster).get("", {})


def _stage_rows(db: ProfileDB, label: str, model: str, cluster: str) -> dict[tuple[str, str], StageCosts]:
    """The runtime's costs of each stage of `model` measured as `label` in `cluster`'s testbed
    (`measure_stage_costs_in_testbed`), keyed by the stage's first and last op, as last measured."""
    return {tuple(key.split("..", 1)): StageCosts(wake_s=t["wake"], spread_s=t["spread"])
            for key, t in _cost_rows(db, label, model, cluster).items() if key and set(STAGE_COSTS) <= t.keys()}


def _cost_rows(db: ProfileDB, label: str, model: str, cluster: str) -> dict[str, dict[str, float]]:
    """The "runtime" rows of `model` as `label` in `cluster`'s testbed, by op_name (empty for the
    whole model, a `stage_key` for a stage) and op_class, each as last measured."""
    found: dict[str, dict[str, float]] = {}
    for run in db.runs(label):
        if run.software.get("cluster") == cluster:
            for m in db.measurements(device=label, kind="runtime", run_id=run.id):
                if m.op_class in costs.MODEL_COSTS and m.model == model:
                    found.setdefault(m.op_name, {})[m.op_class] = m.time_s
    return found


def _op_times(db: ProfileDB, label: str, model: str, cluster: str) -> dict[str, list[float]]:
    """Each op's times over the profiles of `model` taken as `label` in `cluster`'s testbed, or
    over all its profiles where none was taken there; a median of them is the op's time.

    A device's slot shapes them: an emulated Pi runs in bursts of its quota each period, the
    others on its core run between the bursts, and both differ between clusters (resnet18's
    last two stages on edge-fleet's Pis: 82.1 ms profiled there against 79.8 in the runs, 67.3
    as the median over profiles from all three clusters against 77.5). And one profile's sum
    can be off by a quarter (164, 171 and 217 ms in three profiles of one benchmark run), so
    every profile taken there counts.
    """
    here: dict[str, list[float]] = {}
    everywhere: dict[str, list[float]] = {}
    for run in db.runs(label):
        for m in db.measurements(device=label, kind="op", run_id=run.id):
            if m.model == model:
                everywhere.setdefault(m.op_name, []).append(m.time_s)
                if run.software.get("cluster") == cluster:
                    here.setdefault(m.op_name, []).append(m.time_s)
    return here or everywhere
