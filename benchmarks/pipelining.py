"""Pipelining pays: on the emulated default fleet, measured throughput of the edgewise plan vs the
single fastest device and the even layer split, and as a fraction of the fleet's compute bound
(sum over devices of 1 / profiled whole-model time on that device). One run, side by side.
Each device type is first profiled inside the testbed (`profile --testbed-device`) and the plans
are made with those figures; the edgewise plan made from catalogue figures is run too.

    .venv/bin/python benchmarks/pipelining.py [--models zoo:resnet50,zoo:resnet18] [--cluster edge-fleet] [--inputs 30]
Needs root (the testbed). Random weights, random inputs.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from pathlib import Path

import torch

from edgewise.cli.plan_cmd import cost_model, trace_model
from edgewise.files import write_atomic
from edgewise.hardware.cluster_io import load_cluster
from edgewise.plan.planners import PLANNERS
from edgewise.testbed.commands import can_emulate
from edgewise.testbed.drive import run_plan
from edgewise.testbed.profiling import profile_in_testbed, testbed_cost_model


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="zoo:resnet50,zoo:resnet18")
    ap.add_argument("--cluster", default="edge-fleet")
    ap.add_argument("--inputs", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=4)
    a = ap.parse_args()
    if (reason := can_emulate()):
        sys.exit(f"pipelining needs the testbed: {reason}")
    torch.set_num_threads(1)
    results = [measure_model(model, a) for model in a.models.split(",")]
    line = json.dumps({"benchmark": "pipelining", "cluster": a.cluster, "inputs": a.inputs, "warmup": a.warmup,
                       "models": results, "machine": platform.node() + " " + platform.machine(),
                       "data": "random weights, random inputs; emulated fleet (figures in the cluster's own time)"})
    write_atomic(Path(__file__).parent / "results" / "pipelining.json", line)
    print(line)


def measure_model(model: str, a) -> dict:
    cluster, graph = load_cluster(a.cluster), trace_model(model)
    cost = cost_model(cluster)
    for kind in {n.device.name: n.name for n in cluster.nodes}.values():   # measure each device type inside the testbed
        profile_in_testbed(cluster, kind, model, quick=True, repeats=3, db=None)
    profiled = testbed_cost_model(cluster, cost, model)
    measured = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, planner, planned_with in (("single", "single", profiled), ("even", "even", profiled),
                                            ("edgewise (catalogue figures)", "edgewise", cost),
                                            ("edgewise", "edgewise", profiled)):
            plan = PLANNERS[planner](graph, cluster, "throughput", planned_with, 1)
            plan_file = str(Path(tmp) / f"{planner}.json")
            Path(plan_file).write_text(plan.to_json())
            report = run_plan(plan, plan_file, str(a.inputs), a.inputs, warmup=a.warmup, testbed=True).report
            measured[name] = {"throughput_per_s": report.throughput_per_s, "p50_s": report.latency_s.p50,
                              "stages": [s.devices for s in plan.stages], "dilation": report.time_dilation}
    bound = sum(1 / sum(profiled.op_time_s(op, n.device) for op in graph.ops) for n in cluster.nodes)
    ours = measured["edgewise"]["throughput_per_s"]
    return {"model": model, "measured": measured, "edgewise_vs_single": ours / measured["single"]["throughput_per_s"],
            "edgewise_vs_even": ours / measured["even"]["throughput_per_s"],
            "compute_bound_per_s": bound, "fraction_of_compute_bound": ours / bound}


if __name__ == "__main__":
    main()
