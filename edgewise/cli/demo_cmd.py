"""`edgewise demo`: plan a model on the default fleet and compare with what a user would do by hand."""
from __future__ import annotations

from pathlib import Path

import typer
from pydantic import BaseModel
from rich.table import Table

from edgewise.cli.common import JsonOption, console, emit
from edgewise.cli.plan_cmd import DEFAULT_CLUSTER, cost_model, load_cluster, simulate_plan, trace_model
from edgewise.files import write_atomic
from edgewise.plan.planners import PLANNERS
from edgewise.plan.report import Report

PLANNER_LABELS = {"single": "single fastest device", "even": "even layer split", "edgewise": "edgewise plan"}


class DemoRow(BaseModel):
    planner: str
    stages: list[list[str]]
    simulated: Report
    speedup_vs_single: float


class DemoResult(BaseModel):
    model: str
    cluster: str
    rows: list[DemoRow]
    plan_file: str
    gantt_file: str
    trace_file: str
    note: str = "simulated with the roofline cost model (fitted where `edgewise profile` measured); random weights"


def demo(
    model: str = typer.Option("zoo:resnet50", "--model", help="The model to plan."),
    cluster: str = typer.Option(DEFAULT_CLUSTER, "--cluster", "-c", help="A built-in cluster name or a cluster YAML file."),
    out: str = typer.Option("out/demo", "--out", help="Folder for the plan, the trace and the Gantt chart."),
    inputs: int = typer.Option(32, "--inputs", min=1, help="Inputs in each simulated stream."),
    as_json: bool = JsonOption,
) -> None:
    """Plan a model on the default edge fleet, simulate it, and compare with the usual splits."""
    the_cluster = load_cluster(cluster)
    graph = trace_model(model)
    folder = Path(out)
    cost = cost_model(the_cluster)
    rows = []
    for name in ("single", "even", "edgewise"):
        p = PLANNERS[name](graph, the_cluster, "throughput", cost, 1)
        ours = name == "edgewise"
        if ours:
            write_atomic(folder / "plan.json", p.to_json())
        report = simulate_plan(p, graph, inputs, str(folder / "trace.json") if ours else None,
                               str(folder / "gantt.png") if ours else None)
        rows.append(DemoRow(planner=name, stages=[s.devices for s in p.stages], simulated=report, speedup_vs_single=0.0))
    for row in rows:
        row.speedup_vs_single = row.simulated.throughput_per_s / rows[0].simulated.throughput_per_s
    result = DemoResult(model=model, cluster=the_cluster.name, rows=rows, plan_file=str(folder / "plan.json"),
                        gantt_file=str(folder / "gantt.png"), trace_file=str(folder / "trace.json"))
    emit(result, as_json, lambda: _render(result))


def _render(r: DemoResult) -> None:
    t = Table(title=f"{r.model} on {r.cluster} (simulated; random weights)")
    for col in ("plan", "stages", "throughput /s", "p50 latency ms", "bytes sent/input", "energy J/input", "speedup vs single"):
        t.add_column(col, justify="left" if col in ("plan", "stages") else "right")
    for row in r.rows:
        s = row.simulated
        t.add_row(PLANNER_LABELS[row.planner], " | ".join(",".join(d) for d in row.stages), f"{s.throughput_per_s:.2f}",
                  f"{s.latency_s.p50 * 1e3:.0f}", f"{s.bytes_sent:,}",
                  f"{s.energy_j_per_inference:.2f}" if s.energy_j_per_inference is not None else "-",
                  f"{row.speedup_vs_single:.2f}x")
    console.print(t)
    console.print(f"plan: {r.plan_file}\ntimeline: {r.gantt_file} (PNG), {r.trace_file} (open in ui.perfetto.dev)")
