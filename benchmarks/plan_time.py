"""How long the edgewise planner takes (planning only: tracing is excluded).

Two cases, on the shared 2-core machine with one thread, median of --repeats runs:
- a synthetic 1,000-op DAG (random costs, 30% of ops read an earlier op too) on the built-in
  16-device `fleet-16` (8 Pi 4, 4 Pi 5, 2 Jetson Nano, a Xavier NX, an N100 on one LAN medium);
  target < 1 s;
- GPT-2 XL (48 blocks, random weights, traced once on the meta device) on 8 devices, the
  heterogeneous half of `fleet-16` (4 Pi 5, 2 Nano, NX, N100); target < 2 s.
Objective throughput (the one that bisects; latency is a single DP pass).

    .venv/bin/python benchmarks/plan_time.py
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "plan"))
from synthetic import chain_graph  # noqa: E402  (the tests' synthetic DAG generator)

from edgewise.files import write_atomic  # noqa: E402
from edgewise.graph.trace import trace  # noqa: E402
from edgewise.hardware.cluster import Cluster  # noqa: E402
from edgewise.hardware.cluster_io import load_cluster  # noqa: E402
from edgewise.plan.planners import edgewise_planner  # noqa: E402
from edgewise.zoo.spec import load_model  # noqa: E402


def timed(graph, cluster, repeats: int, target_s: float) -> dict:
    times, plan = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        plan = edgewise_planner(graph, cluster, "throughput")
        times.append(time.perf_counter() - t)
    med = statistics.median(times)
    return {"graph": graph.model, "ops": len(graph.ops), "cluster": cluster.name, "devices": len(cluster.nodes),
            "median_s": round(med, 4), "max_s": round(max(times), 4), "target_s": target_s,
            "within_target": med < target_s, "stages": [s.devices for s in plan.stages],
            "predicted_throughput_per_s": plan.predicted.throughput_per_s}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="benchmarks/results/plan_time.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    fleet16 = load_cluster("fleet-16")
    half = fleet16.nodes[8:]
    fleet8 = Cluster(name="fleet-16[8:] (4 Pi 5, 2 Nano, NX, N100)", nodes=half,
                     media=[m.model_copy(update={"members": [n.name for n in half]}) for m in fleet16.media])
    gpt = load_model("zoo:gpt2-xl")
    gpt_graph = trace(gpt.model, gpt.example_inputs, "zoo:gpt2-xl")
    rows = [timed(chain_graph(1000, seed=1, name="synthetic-1000"), fleet16, args.repeats, 1.0),
            timed(gpt_graph, fleet8, args.repeats, 2.0)]
    result = {"benchmark": "plan_time", "command": " ".join([sys.executable, *sys.argv]),
              "machine": f"{platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} cores "
                         f"(shared), torch {torch.__version__}, 1 thread",
              "data": "synthetic graph; GPT-2 XL with random weights traced on meta", "rows": rows}
    write_atomic(args.out, json.dumps(result, indent=2))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
