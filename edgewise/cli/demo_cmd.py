"""`edgewise demo`: plan a model on the default fleet and compare with what a user would do by hand."""
from __future__ import annotations

from pathlib import Path

import typer
from pydantic import BaseModel
from rich.progress import Progress
from rich.table import Table

from edgewise.cli.common import JsonOption, console, emit, err_console
from edgewise.cli.plan_cmd import (
    DEFAULT_CLUSTER,
    bound_in_flight,
    cost_model,
    load_cluster,
    plan_title,
    simulate_plan,
    simulation,
    trace_model,
    write_pictures,
)
from edgewise.files import write_atomic
from edgewise.plan.planners import PLANNERS
from edgewise.plan.report import Report, compare
from edgewise.plan.schema import load_plan
from edgewise.testbed.drive import run_plan
from edgewise.testbed.profiling import testbed_prediction_cost

WARMUP = 2            # inputs of the real run that fill the pipeline, left out of its figures
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
    measured: Report | None = None               # the edgewise plan, run for real
    compare_gantt_file: str | None = None        # its predicted timeline above the measured one
    measured_on: str = ""
    errors: dict[str, float] = {}
    note: str = "simulated with the roofline cost model (fitted where `edgewise profile` measured); random weights"


def demo(
    model: str = typer.Option("zoo:resnet50", "--model", help="The model to plan."),
    cluster: str = typer.Option(DEFAULT_CLUSTER, "--cluster", "-c", help="A built-in cluster name or a cluster YAML file."),
    out: str = typer.Option("out/demo", "--out", help="Folder for the plan, the trace and the Gantt chart."),
    inputs: int = typer.Option(32, "--inputs", min=1, help="Inputs in each simulated stream."),
    run: bool = typer.Option(True, "--run/--no-run", help="Also run the edgewise plan (on the testbed when this host can emulate it)."),
    run_inputs: int = typer.Option(8, "--run-inputs", min=2, help="Inputs in the real run."),
    as_json: bool = JsonOption,
) -> None:
    """Plan a model on the default edge fleet, simulate it, and compare with the usual splits."""
    the_cluster = load_cluster(cluster)
    graph = trace_model(model)
    folder = Path(out)
    cost = cost_model(the_cluster)
    rows = []
    for name in ("single", "even", "edgewise"):
        p = bound_in_flight(PLANNERS[name](graph, the_cluster, "throughput", cost, 1), graph, cost)
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
    if run:
        _run_ours(result, the_cluster, graph, run_inputs, quiet=as_json)
    emit(result, as_json, lambda: _render(result))


def _run_ours(result: DemoResult, the_cluster, graph, n: int, quiet: bool) -> None:
    """Run the edgewise plan on real processes and set what was measured beside the prediction."""
    the_plan = load_plan(result.plan_file)
    notes: list[str] = []
    with Progress(console=err_console, disable=quiet, transient=True) as bar:
        task = bar.add_task(f"running the edgewise plan ({n} inputs)", total=n)
        ran = run_plan(the_plan, result.plan_file, str(n), n, warmup=WARMUP, testbed=True,
                       on_progress=lambda done: bar.update(task, completed=done), on_note=notes.append)
    cost = cost_model(the_cluster)
    if ran.on_testbed:   # predict the testbed with what was measured inside it, as `run --compare` does
        cost = testbed_prediction_cost(the_plan, graph, cost)
    sim = simulation(the_plan, graph, n, cost, WARMUP)
    result.compare_gantt_file = str(Path(result.gantt_file).with_name("gantt_predicted_vs_measured.png"))
    write_pictures([(f"{plan_title(the_plan)}: predicted", sim.timeline),
                    (f"{plan_title(the_plan)}: measured", ran.timeline)], None, result.compare_gantt_file)
    result.measured = ran.report
    result.measured_on = "; ".join(notes)   # the testbed's dilation, or why it ran over loopback
    result.errors = {c.figure: c.error for c in compare(sim.report, ran.report)}


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
    if r.measured is not None:
        m = r.measured
        t = Table(title=f"edgewise plan run for real: {r.measured_on}")
        for col in ("figure", "measured", "prediction error"):
            t.add_column(col, justify="left" if col == "figure" else "right")
        t.add_row("throughput /s", f"{m.throughput_per_s:.2f}", f"{r.errors['throughput_per_s']:+.1%}")
        t.add_row("p50 latency ms", f"{m.latency_s.p50 * 1e3:.0f}", f"{r.errors['latency_s.p50']:+.1%}")
        t.add_row("bytes sent/input", f"{m.bytes_sent:,}", f"{r.errors['bytes_sent']:+.1%}")
        console.print(t)
    console.print(f"plan: {r.plan_file}\ntimeline: {r.gantt_file} (PNG), {r.trace_file} (open in ui.perfetto.dev)")
    if r.compare_gantt_file:
        console.print(f"predicted vs measured: {r.compare_gantt_file} (PNG)")
