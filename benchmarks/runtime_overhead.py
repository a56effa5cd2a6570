"""Runtime overhead: a one-stage plan run by `edgewise run`'s workers vs plain eager PyTorch,
same model, same inputs, same thread count, in one run (medians of repeated rounds).

    .venv/bin/python benchmarks/runtime_overhead.py [--model zoo:resnet18] [--inputs 40] [--rounds 3]
        [--device cpu|cuda] [--out FILE]

On a GPU (`--device cuda`) eager copies each input to the GPU and its output back, as the
runtime does. Either way eager's inputs are made before its clock starts, while the runtime's
first device makes each inside its loop, which counts against edgewise. Rounds alternate the
two, and the ratio is the median of the rounds' own ratios. Random weights, random inputs.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from edgewise.cli.plan_cmd import cost_model, trace_model
from edgewise.files import write_atomic
from edgewise.hardware.catalogue import device
from edgewise.hardware.cluster import Cluster, Node
from edgewise.plan.planners import PLANNERS
from edgewise.runtime.inputs import random_input
from edgewise.testbed.drive import run_plan
from edgewise.zoo.spec import load_model


def eager_throughput(model, example, n: int, warmup: int, dev: torch.device) -> float:
    inputs = [random_input(example, k) for k in range(n)]
    with torch.inference_mode():
        for x in inputs[:warmup]:
            model(*(v.to(dev) for v in x)).cpu()
        t = time.perf_counter()
        for x in inputs[warmup:]:
            model(*(v.to(dev) for v in x)).cpu()
    return (n - warmup) / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="zoo:resnet18")
    ap.add_argument("--inputs", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "runtime_overhead.json")
    a = ap.parse_args()
    dev = torch.device("cuda:0" if a.device == "cuda" else "cpu")
    catalogue = "h100-sxm" if a.device == "cuda" else "intel-n100"   # only the planner reads it
    cluster = Cluster(name="one", nodes=[Node(name="host", device=device(catalogue))])
    graph = trace_model(a.model)
    plan = PLANNERS["single"](graph, cluster, "throughput", cost_model(cluster), 1)
    loaded = load_model(a.model)
    model = loaded.model.to(dev)
    # a one-stage run's single worker gets every core (runtime: cores // processes); eager gets the
    # same (set after tracing, which pins itself to one thread)
    threads = max(1, os.cpu_count() or 1)
    torch.set_num_threads(threads)
    warmup = max(2, a.inputs // 10)     # a GPU's first passes set up cuDNN and the allocator
    ours, eager = [], []
    with tempfile.TemporaryDirectory() as tmp:
        plan_file = str(Path(tmp) / "plan.json")
        Path(plan_file).write_text(plan.to_json())
        for _ in range(a.rounds):
            eager.append(eager_throughput(model, loaded.example_inputs, a.inputs, warmup, dev))
            report = run_plan(plan, plan_file, str(a.inputs), a.inputs, warmup=warmup, device=a.device).report
            ours.append(report.throughput_per_s)
    line = json.dumps({"benchmark": "runtime_overhead", "model": a.model, "inputs": a.inputs, "warmup": warmup, "rounds": a.rounds,
                      "device": torch.cuda.get_device_name(0) if a.device == "cuda" else "cpu",
                      "eager_per_s": statistics.median(eager), "edgewise_one_stage_per_s": statistics.median(ours),
                      "ratio": statistics.median(o / e for o, e in zip(ours, eager)),
                      "eager_rounds_per_s": eager, "edgewise_rounds_per_s": ours,
                      "machine": platform.node() + " " + platform.machine(), "threads": threads,
                      "data": "random weights, random inputs"})
    write_atomic(a.out, line)
    print(line)


if __name__ == "__main__":
    main()
