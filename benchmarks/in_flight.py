"""The bound on inputs in flight: measured and predicted throughput and p50 latency of a plan
with no bound and with a bound (the fitted one, or one given), run side by side on the testbed,
in rounds, medians over the runs. Uses the profile database's testbed rows as they are (run
`benchmarks/fidelity.py` or `edgewise profile --testbed-device` first). Random weights, random inputs.

    .venv/bin/python benchmarks/in_flight.py [--cases zoo:m5@pi-fleet@fit,zoo:resnet18@edge-fleet@7] [--runs 3]
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from fidelity import rel, run_once, warmup_of  # noqa: E402

from edgewise.cli.plan_cmd import bound_in_flight, cost_model, simulate_plan, trace_model  # noqa: E402
from edgewise.files import write_atomic  # noqa: E402
from edgewise.hardware.cluster_io import load_cluster  # noqa: E402
from edgewise.plan.planners import PLANNERS  # noqa: E402
from edgewise.testbed.commands import can_emulate  # noqa: E402
from edgewise.testbed.profiling import testbed_cost_model  # noqa: E402

OUT = Path(__file__).parent / "results" / "in_flight.json"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", default="zoo:m5@pi-fleet@fit,zoo:resnet18@edge-fleet@7")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=4.0)
    a = ap.parse_args()
    if (reason := can_emulate()):
        sys.exit(f"in_flight needs the testbed: {reason}")
    torch.set_num_threads(1)
    cases = []
    for case in a.cases.split(","):
        model, cname, bound = case.split("@")
        graph, cluster = trace_model(model), load_cluster(cname)
        base = cost_model(cluster)
        cost = testbed_cost_model(cluster, base, model)
        free = PLANNERS["edgewise"](graph, cluster, "throughput", base, 1)
        bounded = bound_in_flight(free, graph, cost, None if bound == "fit" else int(bound))
        n = min(1500, max(32, math.ceil(a.seconds * simulate_plan(free, graph, 64, None, None, cost).throughput_per_s)))
        cases.append({"model": model, "cluster": cname, "bound_from": bound, "inputs": n, "graph": graph,
                      "cost": cost, "plans": {"none": free, str(bounded.max_in_flight): bounded}, "runs": {}})
    for _ in range(a.runs):
        for c in cases:
            for name, plan in c["plans"].items():
                c["runs"].setdefault(name, []).append(run_once(plan, c["inputs"]))
    rows = []
    for c in cases:
        for name, plan in c["plans"].items():
            runs = c["runs"][name]
            thr = statistics.median(r["throughput_per_s"] for r in runs)
            p50 = statistics.median(r["p50_s"] for r in runs)
            sim = simulate_plan(plan, c["graph"], c["inputs"], None, None, c["cost"], warmup=warmup_of(c["inputs"]))
            rows.append({"model": c["model"], "cluster": c["cluster"], "max_in_flight": plan.max_in_flight,
                         "bound_from": c["bound_from"], "inputs": c["inputs"], "runs": runs,
                         "measured": {"throughput_per_s": thr, "p50_s": p50},
                         "predicted": {"throughput_per_s": sim.throughput_per_s, "p50_s": sim.latency_s.p50},
                         "err_throughput": rel(sim.throughput_per_s, thr), "err_p50": rel(sim.latency_s.p50, p50)})
            print(json.dumps({k: v for k, v in rows[-1].items() if k != "runs"}), flush=True)
    write_atomic(OUT, json.dumps({"benchmark": "in_flight", "command": "benchmarks/in_flight.py " + " ".join(sys.argv[1:]),
                                  "machine": f"vm {platform.machine()}", "runs_per_plan": a.runs,
                                  "data": "random weights, random inputs; emulated fleet", "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
