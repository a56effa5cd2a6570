"""How long `edgewise inspect` takes to trace zoo models into an OpGraph (load + trace).

Random weights; default zoo inputs (batch 1, 224x224 images, 32 tokens). One thread, as on the
shared 2-core machine; median of --repeats runs in one process after one warm-up trace (which
pays torch.export's first-call costs). Also checks that the op FLOPs add up to
FlopCounterMode over the whole forward (skipped for gpt2-xl, which lives on the meta device).

    .venv/bin/python benchmarks/trace_bench.py [--models resnet50 gpt2-xl] [--repeats 3]
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from edgewise.graph.trace import trace
from edgewise.zoo.spec import load_model

# The targets: resnet50 in a few seconds, gpt2-xl (meta) within about 20 s.
TARGET_S = {"resnet50": 5.0, "gpt2-xl": 20.0}


def measure(name: str, repeats: int) -> dict:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        loaded = load_model(f"zoo:{name}")
        graph = trace(loaded.model, loaded.example_inputs, f"zoo:{name}")
        times.append(time.perf_counter() - start)
    row = {"model": name, "level": graph.level, "ops": len(graph.ops),
           "median_s": round(statistics.median(times), 2), "flops": graph.total_flops,
           "param_bytes": graph.total_param_bytes,
           "activation_bytes": graph.total_activation_bytes}
    if next(loaded.model.parameters()).device.type != "meta":
        with FlopCounterMode(display=False) as counter:
            loaded.model(*loaded.example_inputs)
        row["flops_equal_whole_forward"] = counter.get_total_flops() == graph.total_flops
    if name in TARGET_S:
        row["target_s"] = TARGET_S[name]
        row["within_target"] = row["median_s"] <= TARGET_S[name]
    return row


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", nargs="+", default=["resnet50", "gpt2-xl", "vit_b_16",
                                                        "efficientnet_b0", "gpt2", "llama"])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    warm = load_model("zoo:mlp")
    trace(warm.model, warm.example_inputs)
    rows = [measure(m, args.repeats) for m in args.models]
    print(json.dumps({"benchmark": "trace", "command": " ".join([sys.executable, *sys.argv]),
                      "machine": f"{platform.node()} {platform.processor() or platform.machine()}, "
                                 f"torch {torch.__version__}, 1 thread",
                      "data": "random weights, random inputs", "rows": rows}))


if __name__ == "__main__":
    main()
