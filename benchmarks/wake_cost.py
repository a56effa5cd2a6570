"""A stage's step woken for each input vs the same step back to back: the thread CPU of each
stage of a plan (and of the whole model) run back to back, after a sleep, and woken by another
thread each time; then the wake probe's own figures for the whole model (`measure_wake`, over
loopback: a step woken, and an input served alone). Random weights, random inputs; pin it to one core for steadier figures.

    taskset -c 1 .venv/bin/python benchmarks/wake_cost.py --model zoo:m5 [--cluster edge-fleet]
        [--steps 300] [--out FILE]
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import threading
import time

import torch

from edgewise.cli.plan_cmd import trace_model
from edgewise.graph.stages import export_module, run_stage, split_graph
from edgewise.hardware.cluster_io import load_cluster
from edgewise.plan.planners import PLANNERS
from edgewise.proc import exact_timers, steady_allocations
from edgewise.runtime import costs
from edgewise.runtime.partition import split
from edgewise.zoo.spec import load_model, saved_program

SETTLE = 50     # steps left out at the start of each way


def cpu_per_step(stage, env, params, steps: int, before) -> float:
    samples = []
    for _ in range(steps):
        before()
        t0 = time.thread_time()
        run_stage(stage, env, params)
        samples.append(time.thread_time() - t0)
    return statistics.median(samples[SETTLE:])


def woken_by_a_thread() -> None:
    ev = threading.Event()
    threading.Timer(1e-3, ev.set).start()
    ev.wait()


WAYS = {"back_to_back": lambda: None, "after_1ms_sleep": lambda: time.sleep(1e-3), "woken_by_a_thread": woken_by_a_thread}


def ways(stage, env, params, steps: int) -> dict[str, float]:
    return {way: cpu_per_step(stage, env, params, steps, before) for way, before in WAYS.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="zoo:m5")
    ap.add_argument("--cluster", default="edge-fleet", help="the plan's stages are the edgewise planner's here")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--out", help="also write the JSON here")
    a = ap.parse_args()
    if a.steps <= SETTLE:
        raise SystemExit(f"--steps: more than {SETTLE}")
    torch.set_num_threads(1)
    exact_timers()
    steady_allocations()
    loaded = load_model(a.model)
    plan = PLANNERS["edgewise"](trace_model(a.model), load_cluster(a.cluster), "throughput", None, 1)
    staged = split(loaded.model, loaded.example_inputs, plan)
    whole = split_graph(export_module(loaded.model, loaded.example_inputs), loaded.model, lambda n: 0)
    result = {"model": a.model, "cluster": a.cluster, "machine": platform.node(), "unit": "thread CPU seconds a step",
              "stages": [], "whole": None, "measure_wake_loopback_s": None,
              "alone_loopback_s": None}
    with torch.inference_mode():
        env = dict(zip(staged.inputs, loaded.example_inputs))
        for st, s in zip(staged.stages, plan.stages):
            result["stages"].append({"devices": s.devices, **ways(st, env, staged.params, a.steps)})
            env = run_stage(st, env, staged.params)
        result["whole"] = ways(whole.stages[0], dict(zip(whole.inputs, loaded.example_inputs)), whole.params, a.steps)
    with saved_program(a.model) as program:
        found = costs.measure_wake(program)
        result["measure_wake_loopback_s"], result["alone_loopback_s"] = found.wake_s, found.alone_s
    text = json.dumps(result, indent=2)
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
