"""How good edgewise plans are: simulated throughput vs the even layer split, vs brute force, vs bounds.

For each zoo model (random weights, batch 1, default inputs) on each cluster:
- simulated throughput (sim/, --inputs per stream) of the edgewise plan / that of the even split
  (equal layer count per device, devices in cluster order: what torch.distributed.pipelining or a
  hand split gives); targets: median >= 1.5x, never below 1.0x;
- brute force: the graph coarsened to ~12 blocks (the cheapest cut in each of 12 windows of equal
  compute), every contiguous cut of those blocks x every assignment of devices (up to swapping
  interchangeable devices), best period by the planner's cost model vs the planner's own search
  restricted to the same cut points; target: within 2%;
- the plan's throughput as a fraction of the fleet's compute bound (sum over devices of
  1 / model time on that device) and of its link bound (1 / busiest channel's load for this plan).
All figures come from the roofline cost model with catalogue device figures (no real devices).

    .venv/bin/python benchmarks/plan_quality.py
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import platform
import statistics
import sys
import time

import torch

from edgewise.cost.roofline import CostModel
from edgewise.errors import EdgewiseError
from edgewise.files import write_atomic
from edgewise.graph.trace import trace
from edgewise.hardware.cluster_io import load_cluster
from edgewise.plan.evaluate import StageSpan, channel_loads, evaluate
from edgewise.plan.pipeline import PipelineSearch, bisect_period
from edgewise.plan.planners import edgewise_planner, even_planner, spans_of
from edgewise.plan.profile import profile
from edgewise.sim.pipeline import simulate
from edgewise.zoo.spec import load_model

MODELS = ["resnet18", "resnet50", "mobilenet_v2", "efficientnet_b0", "vgg16", "googlenet", "vit_b_16",
          "mlp_mixer", "unet", "gpt2"]
CLUSTERS = ["pi-fleet", "pi-jetson-lan", "phones", "slow-link"]
BLOCKS = 12


def brute_force_period(prof, positions: list[int]) -> float:
    """Best period over every contiguous cut at `positions` x every device assignment up to
    swapping devices of one class (each stage: a class and a replica count)."""
    counts = [len(c.members) for c in prof.classes]
    interior = positions[1:-1]
    best = math.inf

    def sequences(m, left):
        if m == 0:
            yield []
            return
        for k, c in enumerate(left):
            for r in range(1, c + 1):
                rest = list(left)
                rest[k] -= r
                for tail in sequences(m - 1, rest):
                    yield [(k, r)] + tail

    for m in range(1, min(sum(counts), len(positions) - 1) + 1):
        for seq in sequences(m, counts):
            for cuts in itertools.combinations(interior, m - 1):
                bounds = (positions[0], *cuts, positions[-1])
                taken = [0] * len(counts)
                spans = []
                for i, (k, r) in enumerate(seq):
                    members = prof.classes[k].members
                    spans.append(StageSpan(bounds[i], bounds[i + 1], tuple(members[taken[k]: taken[k] + r])))
                    taken[k] += r
                best = min(best, evaluate(prof, spans).period_s)
    return best


def measure(graph, cluster, inputs: int) -> dict:
    row = {"model": graph.model, "ops": len(graph.ops), "cluster": cluster.name}
    prof = profile(graph, cluster, CostModel())
    t = time.perf_counter()
    ours = edgewise_planner(graph, cluster, "throughput")
    row["plan_s"] = round(time.perf_counter() - t, 3)
    row["stages"] = [s.devices for s in ours.stages]
    sim = simulate(ours, graph, inputs=inputs).report
    row["edgewise_per_s"] = sim.throughput_per_s
    try:
        even = even_planner(graph, cluster, "throughput")
        row["even_per_s"] = simulate(even, graph, inputs=inputs).report.throughput_per_s
        row["vs_even"] = row["edgewise_per_s"] / row["even_per_s"]
    except EdgewiseError as e:
        row["even_per_s"], row["vs_even"], row["even_error"] = None, None, str(e)
    compute_bound = sum(1.0 / prof.stage_time_s(prof.class_of[n.name], 0, prof.n) for n in cluster.nodes)
    loads = channel_loads(prof, spans_of(ours, graph)) or {}
    link_bound = 1.0 / max(loads.values()) if loads and max(loads.values()) > 0 else math.inf
    row["of_compute_bound"] = sim.throughput_per_s / compute_bound
    row["of_link_bound"] = sim.throughput_per_s / link_bound if math.isfinite(link_bound) else 0.0
    # brute force on the graph coarsened to ~12 blocks, against the planner on the same cut points
    search = PipelineSearch(prof, max_positions=BLOCKS + 1)
    planned = min(evaluate(prof, s).period_s for s in bisect_period(prof, search))
    brute = brute_force_period(prof, [int(p) for p in search.pos])
    row["coarse_blocks"] = int(len(search.pos) - 1)
    row["vs_brute_force"] = brute / planned if planned > 0 else 1.0     # 1.0 = as good as brute force
    return row


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--clusters", nargs="+", default=CLUSTERS)
    parser.add_argument("--inputs", type=int, default=40)
    parser.add_argument("--out", default="benchmarks/results/plan_quality.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    clusters = [load_cluster(c) for c in args.clusters]
    rows = []
    for name in args.models:
        loaded = load_model(f"zoo:{name}")
        graph = trace(loaded.model, loaded.example_inputs, f"zoo:{name}")
        for cluster in clusters:
            rows.append(measure(graph, cluster, args.inputs))
            print(json.dumps(rows[-1]), file=sys.stderr)
    ratios = [r["vs_even"] for r in rows if r["vs_even"] is not None]
    brute = [r["vs_brute_force"] for r in rows]
    summary = {"pairs": len(rows), "vs_even_median": statistics.median(ratios), "vs_even_min": min(ratios),
               "vs_even_below_1": sum(bool(r < 1.0) for r in ratios), "even_infeasible": len(rows) - len(ratios),
               "vs_brute_force_min": min(brute), "within_2pct_of_brute_force": sum(bool(b >= 0.98) for b in brute),
               "of_compute_bound_median": statistics.median(r["of_compute_bound"] for r in rows),
               "targets": {"vs_even_median": 1.5, "vs_even_min": 1.0, "vs_brute_force_min": 0.98}}
    result = {"benchmark": "plan_quality", "command": " ".join([sys.executable, *sys.argv]),
              "machine": f"{platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                         f"torch {torch.__version__}, 1 thread",
              "data": "zoo models with random weights; figures simulated with the roofline cost model",
              "summary": summary, "rows": rows}
    write_atomic(args.out, json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}))


if __name__ == "__main__":
    main()
