"""Fidelity: predicted (simulate) vs measured (run on the emulated fleet) throughput and p50 latency.

For each model x cluster: plan with the edgewise planner, run the plan on the testbed (one
process per device in its own namespace, shaped links, CPU quotas, time dilation), and compare
with the simulator's prediction twice: with the default/host-fitted cost model ("before") and
after `edgewise profile MODEL --testbed-device` measured each device type inside each cluster's
testbed: the model's ops, and the runtime's own costs, of the model and of each stage of the
plan that takes its input in ("after"). Each plan runs `--runs`
times and its measured figures are the medians. Needs root. Random weights, random inputs.
Prints one JSON line; writes benchmarks/results/fidelity.json after every model, so a partial
run still leaves its figures.

    .venv/bin/python benchmarks/fidelity.py [--models zoo:resnet18,...] [--clusters edge-fleet,...] [--seconds 4] [--runs 3] [--out FILE]
    .venv/bin/python benchmarks/fidelity.py --repredict RESULTS.json [--remeasure-runtime]
        [--remeasure-model-costs] [--remeasure-crowding] [--measure-stages] --out FILE

`--repredict` predicts a results file's runs again (after a change to the simulator); with
`--remeasure-runtime` it first measures the runtime's own costs again inside every device type of
every cluster in the file (after a change to what that probe measures), and with
`--remeasure-model-costs` what each model of the file (of `--models`) costs the runtime there (a
step woken, an input served alone, how much its step varies), and with `--remeasure-crowding` how much a busy fleet slows
it (testbed/crowding.py), and with `--measure-stages` what each stage of each plan that takes
its input in costs the runtime there (as a full run measures them after planning), leaving the
ops' profiles as they are. Runs nothing but the probes.

"after" counts that slowdown in proportion to how busy the simulated run keeps the rest of the
fleet; "quiet" is the same profiles without it.
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from edgewise.cli.plan_cmd import bound_in_flight, cost_model, simulate_plan, trace_model
from edgewise.files import write_atomic
from edgewise.hardware.cluster_io import load_cluster
from edgewise.plan.planners import PLANNERS
from edgewise.plan.schema import Plan
from edgewise.testbed.commands import can_emulate
from edgewise.testbed.drive import run_plan
from edgewise.testbed.profiling import (measure_crowding_in_testbed, measure_model_costs_in_testbed,
                                        measure_runtime_in_testbed, measure_stage_costs_in_testbed,
                                        profile_in_testbed, testbed_cost_model, testbed_prediction_cost)
from edgewise.zoo.spec import saved_program

MODELS = "zoo:resnet18,zoo:mobilenet_v2,zoo:mlp,zoo:m5,zoo:unet,zoo:mlp_mixer"
CLUSTERS = "edge-fleet,pi-fleet,slow-link"
OUT = Path(__file__).parent / "results" / "fidelity.json"


def rel(pred: float, meas: float) -> float:
    return abs(pred - meas) / meas


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", help=f"comma-separated (default: {MODELS}; with --repredict, the file's)")
    ap.add_argument("--clusters", default=CLUSTERS)
    ap.add_argument("--inputs", type=int, default=32, help="fewest inputs per run")
    ap.add_argument("--max-inputs", type=int, default=1500)
    ap.add_argument("--seconds", type=float, default=4.0, help="aim each run at this much of the cluster's time")
    ap.add_argument("--runs", type=int, default=3, help="runs of each plan; the figures are their medians")
    ap.add_argument("--profile-rounds", type=int, default=3,
                    help="profiles of each device type in each cluster, each in a fresh process (ops: their median)")
    ap.add_argument("--repredict", type=Path, help="predict the runs of this results file again; run nothing")
    ap.add_argument("--remeasure-runtime", action="store_true",
                    help="with --repredict: first measure the runtime's own costs again in each cluster's testbed")
    ap.add_argument("--remeasure-model-costs", action="store_true",
                    help="with --repredict: first measure what each model costs the runtime again there")
    ap.add_argument("--remeasure-crowding", action="store_true",
                    help="with --repredict: first measure again how a busy fleet slows each model there")
    ap.add_argument("--measure-stages", action="store_true",
                    help="with --repredict: first measure what each plan's stages cost the runtime there")
    ap.add_argument("--out", type=Path, default=OUT, help="where the results go")
    a = ap.parse_args()
    if a.runs < 1 or a.profile_rounds < 1:
        sys.exit("--runs, --profile-rounds: at least 1")
    if (a.remeasure_runtime or a.remeasure_model_costs or a.remeasure_crowding or a.measure_stages) and not a.repredict:
        sys.exit("--remeasure-runtime, --remeasure-model-costs, --remeasure-crowding, --measure-stages: "
                 "only with --repredict RESULTS.json")
    if a.repredict:
        return repredict(a.repredict, a)
    if (reason := can_emulate()):
        sys.exit(f"fidelity needs the testbed: {reason}")
    torch.set_num_threads(1)
    rows = []
    runtime_measured: set[tuple[str, str]] = set()      # (cluster, device type): costs depend on the slice of a core
    for model in (a.models or MODELS).split(","):
        with saved_program(model) as program:      # once per model, for every device's wake-up cost
            rows += model_rows(model, program, a, runtime_measured)
        write_atomic(a.out, json.dumps(summary(rows, a), indent=2))
    print(json.dumps({k: v for k, v in summary(rows, a).items() if k != "rows"}))


def model_rows(model: str, program: str, a, runtime_measured: set[tuple[str, str]]) -> list[dict]:
    """`model`'s plan on each cluster: its devices profiled inside the testbed, then run `a.runs` times."""
    rows = []
    graph = trace_model(model)
    pairs = []
    for cname in a.clusters.split(","):
        cluster = load_cluster(cname)
        # each device type's ops in each cluster: its slot there (quota, period, neighbours) shapes them
        for kind, node in device_types(cluster).items():
            profile_in_testbed(cluster, node, model, quick=True, repeats=5, db=None,
                               runtime=(cname, kind) not in runtime_measured, program=program,
                               rounds=a.profile_rounds)
            runtime_measured.add((cname, kind))
        base = cost_model(cluster)
        # the bound on inputs in flight fitted with what was measured, as a user who profiled gets it
        plan = bound_in_flight(PLANNERS["edgewise"](graph, cluster, "throughput", base, 1), graph,
                               testbed_cost_model(cluster, base, model))
        measure_stage_costs_in_testbed(plan, program, db=None)
        profiled_cost = testbed_cost_model(cluster, base, model)
        # enough inputs that the measured window spans seconds of the cluster's time
        guess = simulate_plan(plan, graph, 64, None, None, profiled_cost).throughput_per_s
        n = max(a.inputs, min(a.max_inputs, math.ceil(a.seconds * guess)))
        pairs.append((cname, plan, n, base, profiled_cost, []))
    # Each plan runs `--runs` times, in rounds over the clusters, so that the host's changes of
    # speed over minutes fall on different runs of a plan rather than all on one.
    for _ in range(a.runs):
        for _, plan, n, _, _, runs in pairs:
            runs.append(run_once(plan, n))
    for cname, plan, n, base, profiled_cost, runs in pairs:
        rows.append({"model": model, "cluster": cname, "stages": [s.devices for s in plan.stages],
                     "plan": json.loads(plan.to_json()), "inputs": n, "warmup": warmup_of(n),
                     "dilation": runs[0]["dilation"], "runs": runs, "measured": median_run(runs)})
        rows[-1].update(predict(rows[-1], graph, plan, base, profiled_cost))
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "plan"}), file=sys.stderr, flush=True)
    return rows


def device_types(cluster) -> dict[str, str]:
    """One node of each device type in `cluster` (what is measured inside the testbed), by type."""
    return {n.device.name: n.name for n in cluster.nodes}


def warmup_of(n: int) -> int:
    return max(2, n // 10)


def run_once(plan: Plan, n: int) -> dict:
    """One run of `plan` on the testbed: its measured figures in the cluster's own time."""
    with tempfile.TemporaryDirectory() as tmp:
        plan_file = str(Path(tmp) / "plan.json")
        Path(plan_file).write_text(plan.to_json())
        t = time.perf_counter()
        measured = run_plan(plan, plan_file, str(n), n, warmup=warmup_of(n), testbed=True).report
    return {"throughput_per_s": measured.throughput_per_s, "p50_s": measured.latency_s.p50,
            "per_stage_s": measured.per_stage_s, "dilation": measured.time_dilation,
            "run_s": time.perf_counter() - t}


def median_run(runs: list[dict]) -> dict:
    """Each figure's median over the runs of one plan."""
    return {"throughput_per_s": statistics.median(r["throughput_per_s"] for r in runs),
            "p50_s": statistics.median(r["p50_s"] for r in runs),
            "per_stage_s": [statistics.median(r["per_stage_s"][i] for r in runs)
                            for i in range(len(runs[0]["per_stage_s"]))]}


def predict(row: dict, graph, plan, base, profiled_cost) -> dict:
    """Before and after profiling, what the simulator predicts for the run in `row`, and its
    errors; "quiet" is after profiling without counting how a busy fleet slows a device."""
    out = {}
    crowded = testbed_prediction_cost(plan, graph, base)
    for which, cost in (("before", base), ("quiet", profiled_cost), ("after", crowded)):
        r = simulate_plan(plan, graph, row["inputs"], None, None, cost, warmup=row["warmup"])
        out[which] = {"throughput_per_s": r.throughput_per_s, "p50_s": r.latency_s.p50, "per_stage_s": r.per_stage_s,
                      "err_throughput": rel(r.throughput_per_s, row["measured"]["throughput_per_s"]),
                      "err_p50": rel(r.latency_s.p50, row["measured"]["p50_s"])}
    return out


def repredict(path: Path, a) -> None:
    """Predict the runs recorded in `path` again with this simulator and the profile database
    (same plans, inputs and warm-up), keeping the measurements: for changes to the simulator."""
    try:
        rows = json.loads(path.read_text())["rows"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        sys.exit(f"--repredict {path}: not a fidelity results file ({type(e).__name__})")
    chosen = a.models.split(",") if a.models else [row["model"] for row in rows]
    if (stray := sorted(set(chosen) - {row["model"] for row in rows})):
        sys.exit(f"--models: {', '.join(stray)} not in {path} (its models are named like {rows[0]['model']})")
    if a.remeasure_runtime or a.remeasure_model_costs or a.remeasure_crowding or a.measure_stages:
        if (reason := can_emulate()):
            sys.exit(f"--remeasure-*: needs the testbed: {reason}")
        torch.set_num_threads(1)
    if a.remeasure_runtime:
        for cname in dict.fromkeys(row["cluster"] for row in rows):
            cluster = load_cluster(cname)
            for kind, node in device_types(cluster).items():
                measure_runtime_in_testbed(cluster, node, db=None)
                print(f"runtime costs measured again: {kind} in {cname}", file=sys.stderr, flush=True)
    probes = [(what, probe) for flag, what, probe in ((a.remeasure_model_costs, "model costs", measure_model_costs_in_testbed),
                                                      (a.remeasure_crowding, "crowding", measure_crowding_in_testbed)) if flag]
    for model in dict.fromkeys(row["model"] for row in rows if row["model"] in chosen and (probes or a.measure_stages)):
        with saved_program(model) as program:
            for cname in dict.fromkeys(row["cluster"] for row in rows if row["model"] == model):
                cluster = load_cluster(cname)
                for kind, node in device_types(cluster).items():
                    for what, probe in probes:
                        probe(cluster, node, model, program, db=None)
                        print(f"{what} measured again: {model}, {kind} in {cname}", file=sys.stderr, flush=True)
            for row in rows:
                if a.measure_stages and row["model"] == model:
                    n = measure_stage_costs_in_testbed(Plan.model_validate(row["plan"]), program, db=None)
                    print(f"stage costs measured: {model} in {row['cluster']} ({n})", file=sys.stderr, flush=True)
    for row in rows:
        graph, cluster = trace_model(row["model"]), load_cluster(row["cluster"])
        base = cost_model(cluster)
        plan = Plan.model_validate(row["plan"])
        row.update(predict(row, graph, plan, base, testbed_cost_model(cluster, base, row["model"])))
    write_atomic(a.out, json.dumps(summary(rows, a), indent=2))
    print(json.dumps({k: v for k, v in summary(rows, a).items() if k != "rows"}))


def summary(rows: list[dict], a) -> dict:
    def stat(which: str, key: str) -> dict:
        errs = [r[which][key] for r in rows]
        return {"median": statistics.median(errs), "worst": max(errs)}
    return {"benchmark": "fidelity", "command": " ".join(sys.argv), "machine": platform.node() + " " + platform.machine(),
            "pairs": len(rows), "runs_per_pair": a.runs, "fewest_inputs": a.inputs, "seconds": a.seconds, "data": "random weights, random inputs; emulated fleet",
            "before": {"throughput": stat("before", "err_throughput"), "p50": stat("before", "err_p50")},
            "quiet": {"throughput": stat("quiet", "err_throughput"), "p50": stat("quiet", "err_p50")},
            "after": {"throughput": stat("after", "err_throughput"), "p50": stat("after", "err_p50")},
            "run_to_run": {"throughput": run_to_run(rows, "throughput_per_s"), "p50": run_to_run(rows, "p50_s")},
            "rows": rows}


def run_to_run(rows: list[dict], key: str) -> dict:
    """How far one plan's runs fall apart ((max - min) / median, median and worst over the pairs),
    and in how many pairs the prediction after profiling lies between the runs' extremes: an
    error that the runs' own spread exceeds is not the simulator's alone."""
    spreads, inside = [], 0
    for r in rows:
        values = [run[key] for run in r["runs"]]
        spreads.append((max(values) - min(values)) / statistics.median(values))
        inside += min(values) <= r["after"][key] <= max(values)
    return {"median": statistics.median(spreads), "worst": max(spreads), "prediction_within_runs": inside}


if __name__ == "__main__":
    main()
