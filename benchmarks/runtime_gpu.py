"""The runtime on GPUs over NCCL: `edgewise run --device cuda` on the built-in `gpu-pair` cluster
(one process per GPU) next to plain eager PyTorch on one GPU, same model, same inputs.

    python benchmarks/runtime_gpu.py [--model zoo:resnet50] [--inputs 200] [--out FILE]

Runs three plans: the even 2-stage split (a pipeline, activations sent GPU to GPU), the
edgewise planner's plan, and the single-GPU plan (the runtime's own overhead). Eager runs one
input at a time, copying it to the GPU and its output back, as the runtime does.
Random weights, random inputs.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from edgewise.files import write_atomic
from edgewise.runtime.inputs import random_input
from edgewise.zoo.spec import load_model

EDGEWISE = [sys.executable, "-m", "edgewise"]


def edgewise(*args: str) -> str:
    proc = subprocess.run(EDGEWISE + list(args), capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise SystemExit(f"edgewise {' '.join(args)} failed: {proc.stderr.strip()[-2000:]}")
    return proc.stdout


def eager(spec: str, n: int, warmup: int) -> dict:
    loaded = load_model(spec)
    model = loaded.model.to("cuda:0")
    inputs = [random_input(loaded.example_inputs, k) for k in range(n)]
    latencies = []
    with torch.inference_mode():
        for k, x in enumerate(inputs):
            if k == warmup:
                start = time.perf_counter()
            t = time.perf_counter()
            model(*(v.to("cuda:0") for v in x)).cpu()
            latencies.append(time.perf_counter() - t)
    return {"throughput_per_s": (n - warmup) / (time.perf_counter() - start),
            "latency_p50_s": statistics.median(latencies[warmup:])}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="zoo:resnet50")
    ap.add_argument("--inputs", type=int, default=200)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "runtime_gpu.json"))
    a = ap.parse_args()
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for planner in ("even", "edgewise", "single"):
            plan_file = str(Path(tmp) / f"{planner}.json")
            edgewise("plan", a.model, "--cluster", "gpu-pair", "--planner", planner, "-o", plan_file)
            plan = json.loads(Path(plan_file).read_text())
            command = ["run", plan_file, "--device", "cuda", "--inputs", str(a.inputs), "--json"]
            report = json.loads(edgewise(*command))
            runs[planner] = {"command": "edgewise " + " ".join(command),
                             "stages": [{"devices": s["devices"], "ops": len(s["ops"])} for s in plan["stages"]],
                             "report": report}
    base = eager(a.model, a.inputs, warmup=2)
    result = {
        "benchmark": "runtime_gpu", "model": a.model, "inputs": a.inputs, "warmup": 2,
        "gpu": torch.cuda.get_device_name(0), "gpus": torch.cuda.device_count(),
        "torch": torch.__version__, "nccl": ".".join(map(str, torch.cuda.nccl.version())),
        "eager_one_gpu": base, "runs": runs,
        "speedup_vs_eager": {p: r["report"]["throughput_per_s"] / base["throughput_per_s"] for p, r in runs.items()},
        "data": "random weights, random inputs",
    }
    write_atomic(a.out, json.dumps(result, indent=2))
    print(f"{a.model} on {result['gpus']}x {result['gpu']}, {a.inputs} inputs; eager one GPU "
          f"{base['throughput_per_s']:.1f}/s, p50 {base['latency_p50_s'] * 1e3:.2f} ms")
    for p, r in runs.items():
        rep = r["report"]
        print(f"  {p:9s} {r['stages']}: {rep['throughput_per_s']:.1f}/s (x{result['speedup_vs_eager'][p]:.2f}), "
              f"p50 {rep['latency_s']['p50'] * 1e3:.2f} ms, per stage {[round(t * 1e3, 2) for t in rep['per_stage_s']]} ms, "
              f"{rep['bytes_sent']} B sent/input, peak {rep['peak_memory_bytes']}")


if __name__ == "__main__":
    main()
