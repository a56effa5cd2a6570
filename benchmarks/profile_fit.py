"""How well the roofline fitted from `edgewise profile` predicts op times on this machine.

Random weights and random inputs throughout (nothing is downloaded). In one process:
1. profile this device into a fresh database: the microbenchmark sweep plus each op of FIT_MODEL;
2. fit the roofline's efficiencies from it (cost/fit.py);
3. time each op of EVAL_MODEL (held out of the fit) the same way, and its plain forward pass;
4. predict every op with the default CostModel and the fitted one (both on the measured `local`
   device) and report the median per-op error |predicted / measured - 1| and the error of the
   summed time, for the held-out model and, in-sample, for FIT_MODEL.
Prints one JSON line (figures, the command, the machine); --out also writes it to a file.

    PYTHONPATH=. python benchmarks/profile_fit.py --device cpu
    PYTHONPATH=. python3 benchmarks/profile_fit.py --device cuda --out $OUT/profile_fit_cuda.json
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from edgewise.cost.fit import fit_devices
from edgewise.cost.roofline import CostModel, op_class
from edgewise.files import write_atomic
from edgewise.graph.trace import trace
from edgewise.hardware import profiler
from edgewise.hardware.catalogue import builtin_devices
from edgewise.hardware.profile_db import ProfileDB
from edgewise.zoo.spec import load_model


def errors(graph, rows, cost: CostModel, device) -> dict:
    measured = {m.op_name: m.time_s for m in rows}
    predicted = {op.name: cost.op_time_s(op, device) for op in graph.ops}
    per_op = [abs(predicted[n] / measured[n] - 1) for n in measured]
    return {"median_op_error": statistics.median(per_op),
            "sum_error": sum(predicted.values()) / sum(measured.values()) - 1,
            "predicted_sum_s": sum(predicted.values())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--fit-model", default="zoo:resnet18")
    ap.add_argument("--eval-model", default="zoo:mobilenet_v2")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--compare-with", default="", help="catalogue device to put the microbenchmarks beside")
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = profiler.torch_device(args.device)

    fit_loaded = load_model(args.fit_model)
    fit_graph = trace(fit_loaded.model, fit_loaded.example_inputs, args.fit_model)
    t0 = time.perf_counter()
    run, rows = profiler.profile_device(dev, op_class, repeats=args.repeats,
                                        model=(fit_loaded.model, fit_loaded.example_inputs, fit_graph),
                                        command=" ".join(sys.argv))
    profile_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp, ProfileDB(Path(tmp) / "profile.db") as db:
        db.record(run, rows)
        local = db.measured_device(run.device)
        fitted_dev = fit_devices(db, devices=[run.device])[run.device]
    fitted = CostModel(per_device={local.name: fitted_dev.efficiency})

    ev = load_model(args.eval_model)
    eval_graph = trace(ev.model, ev.example_inputs, args.eval_model)
    gm, inputs = profiler.export_for_timing(ev.model, ev.example_inputs, dev)
    eval_rows = profiler.time_ops(gm, inputs, eval_graph, dev, op_class, args.repeats)
    with torch.no_grad():
        forward_s = profiler.median_time_s(lambda: gm(*inputs), dev, args.repeats, warmup=2)

    micro = {}
    for m in rows:
        if m.kind in ("matmul", "conv"):
            key = f"best_{m.kind}_{m.dtype}_flops_per_s"
            micro[key] = max(micro.get(key, 0.0), m.flops / m.time_s)
    micro["copy_bytes_per_s"] = max(m.bytes / m.time_s for m in rows if m.kind == "memory")
    micro["overhead_s"] = fitted_dev.efficiency.overhead_s
    if args.compare_with:
        ref = builtin_devices()[args.compare_with]
        micro[f"fraction_of_{ref.name}"] = {
            **{k: v / ref.peak(k.split("_")[2]) for k, v in micro.items() if k.startswith("best_")},
            "copy": micro["copy_bytes_per_s"] / ref.mem_bandwidth_bytes_per_s}

    result = {
        "benchmark": "profile_fit", "data": "random weights, random inputs",
        "command": " ".join([sys.executable, *sys.argv]),
        "machine": {"host": platform.node(), "device": run.device_model, "torch": torch.__version__,
                    "threads": torch.get_num_threads()},
        "profile_s": profile_s, "fit_model": args.fit_model, "fit_ops": len(fit_graph.ops),
        "eval_model": args.eval_model, "eval_ops": len(eval_graph.ops),
        "microbenchmarks": micro,
        "fitted": {"compute": fitted_dev.efficiency.compute, "memory": fitted_dev.efficiency.memory,
                   "overhead_s": fitted_dev.efficiency.overhead_s, "rows_used": fitted_dev.rows_used},
        "held_out": {"measured_op_sum_s": sum(m.time_s for m in eval_rows), "measured_forward_s": forward_s,
                     "default": errors(eval_graph, eval_rows, CostModel(), local),
                     "fitted": errors(eval_graph, eval_rows, fitted, local)},
        "in_sample": {"default": errors(fit_graph, [m for m in rows if m.kind == "op"], CostModel(), local),
                      "fitted": errors(fit_graph, [m for m in rows if m.kind == "op"], fitted, local)},
    }
    line = json.dumps(result)
    print(line)
    if args.out:
        write_atomic(args.out, line + "\n")


if __name__ == "__main__":
    main()
