"""`edgewise plan` (split a model over a cluster) and `edgewise simulate` (predict a plan's timeline)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from rich.table import Table

from edgewise.cli.common import JsonOption, console, emit
from edgewise.cost.roofline import CostModel
from edgewise.errors import EdgewiseError
from edgewise.files import write_atomic
from edgewise.graph.opgraph import OpGraph
from edgewise.hardware.cluster import Cluster
from edgewise.plan.planners import PLANNERS
from edgewise.plan.report import Report
from edgewise.plan.schema import Plan, load_plan

if TYPE_CHECKING:      # the simulator loads on first use, not with every command
    from edgewise.sim.export import Panel
    from edgewise.sim.pipeline import Simulation

DEFAULT_CLUSTER = "edge-fleet"
OBJECTIVES = ("throughput", "latency", "energy")


def plan(
    model: str = typer.Argument(..., help="zoo:NAME, path/file.py:factory or path/file.onnx"),
    cluster: str = typer.Option(DEFAULT_CLUSTER, "--cluster", "-c", help="A built-in cluster name or a cluster YAML file."),
    objective: str = typer.Option("throughput", "--objective", help="throughput, latency or energy."),
    batch: int = typer.Option(1, "--batch", min=1, help="Inputs per pipeline step."),
    planner: str = typer.Option("edgewise", "--planner", help=f"One of: {', '.join(PLANNERS)}."),
    in_flight: Optional[int] = typer.Option(None, "--max-in-flight", min=1,
                                            help="Inputs in flight at most (default: fitted by simulation; see README)."),
    output: Optional[str] = typer.Option(None, "--output", "-o", help="Write the plan JSON here."),
    as_json: bool = JsonOption,
) -> None:
    """Split MODEL over a cluster's devices as pipeline stages, best for the objective."""
    if objective not in OBJECTIVES:
        raise EdgewiseError(f"--objective {objective!r}: use one of {', '.join(OBJECTIVES)}")
    if planner not in PLANNERS:
        raise EdgewiseError(f"--planner {planner!r}: use one of {', '.join(PLANNERS)}")
    the_cluster = load_cluster(cluster)
    graph = trace_model(model)
    cost = cost_model(the_cluster)
    result = bound_in_flight(PLANNERS[planner](graph, the_cluster, objective, cost, batch), graph, cost, in_flight)
    if output:
        write_atomic(output, result.to_json())
    emit(result, as_json, lambda: render_plan(result, graph, output))


def bound_in_flight(p: Plan, graph: OpGraph, cost: CostModel, given: int | None = None) -> Plan:
    """The plan with the user's bound on inputs in flight, or else the one simulation fits."""
    from edgewise.sim.in_flight import fit_in_flight
    return p.model_copy(update={"max_in_flight": given}) if given else fit_in_flight(p, graph, cost)


def simulate(
    plan_file: str = typer.Argument(..., metavar="PLAN.json"),
    inputs: int = typer.Option(32, "--inputs", min=1, help="How many inputs the simulated stream holds."),
    trace: Optional[str] = typer.Option(None, "--trace", help="Write a Chrome/Perfetto trace JSON here."),
    gantt: Optional[str] = typer.Option(None, "--gantt", help="Write a PNG Gantt chart here."),
    as_json: bool = JsonOption,
) -> None:
    """Predict PLAN.json's timeline serving a stream of inputs."""
    the_plan = load_plan(plan_file)
    report = simulate_plan(the_plan, trace_model(the_plan.model), inputs, trace, gantt)
    emit(report, as_json, lambda: render_report(the_plan, report, trace, gantt))


def simulate_plan(the_plan: Plan, graph: OpGraph, inputs: int, trace: str | None, gantt: str | None,
                  cost: CostModel | None = None, warmup: int | None = None) -> Report:
    """Simulate and write the pictures asked for (shared with `demo` and `run --compare`); the
    first `warmup` inputs (default: one per device) are left out of the figures, as a run does."""
    sim = simulation(the_plan, graph, inputs, cost, warmup)
    write_pictures([(f"{plan_title(the_plan)}: predicted", sim.timeline)], trace, gantt)
    return sim.report


def simulation(the_plan: Plan, graph: OpGraph, inputs: int, cost: CostModel | None = None,
               warmup: int | None = None) -> Simulation:
    """The simulator's timeline and figures for `inputs` inputs (sim/pipeline.py)."""
    from edgewise.sim.pipeline import simulate as run_simulation
    return run_simulation(the_plan, graph, cost or cost_model(the_plan.cluster), inputs, warmup)


def plan_title(the_plan: Plan) -> str:
    return f"{the_plan.model} on {the_plan.cluster.name} ({the_plan.planner or 'plan'})"


def write_pictures(panels: list[Panel], trace: str | None, gantt: str | None, inputs: range | None = None) -> None:
    """The timelines in `panels` ((title, spans) each) as a Perfetto trace and a Gantt PNG, where asked."""
    from edgewise.sim.export import chrome_trace, gantt_png
    if trace:
        write_atomic(trace, chrome_trace(panels))
    if gantt:
        write_atomic(gantt, gantt_png(panels, inputs))


def cost_model(cluster: Cluster) -> CostModel:
    """Roofline efficiencies fitted from the profile database for the cluster's devices that
    `edgewise profile` measured; catalogue defaults for the rest (and when there is no database)."""
    from edgewise.cost.fit import fitted_or_default
    return fitted_or_default(devices=sorted({n.device.name for n in cluster.nodes}))


def load_cluster(name_or_path: str) -> Cluster:
    from edgewise.hardware.cluster_io import load_cluster as load
    return load(name_or_path)


def trace_model(spec: str) -> OpGraph:
    import torch

    from edgewise.graph.trace import trace
    from edgewise.zoo.spec import load_model

    torch.set_num_threads(1)
    loaded = load_model(spec)
    return trace(loaded.model, loaded.example_inputs, spec)


def render_plan(p: Plan, graph: OpGraph, output: str | None) -> None:
    t = Table(title=f"{p.planner} plan: {p.model} ({len(graph.ops)} ops, {p.level} level) on {p.cluster.name}, "
                    f"objective {p.objective}, batch {p.batch}")
    t.add_column("stage", justify="right")
    t.add_column("devices")
    t.add_column("ops", justify="right")
    t.add_column("first .. last op")
    t.add_column("compute ms/input", justify="right")
    for i, st in enumerate(p.stages):
        t.add_row(str(i), ", ".join(st.devices), str(len(st.ops)), f"{st.ops[0]} .. {st.ops[-1]}",
                  f"{p.predicted.per_stage_s[i] * 1e3:.1f}" if p.predicted else "")
    console.print(t)
    unbounded = "no bound (only the senders' queues hold inputs back)"
    console.print(f"inputs in flight: at most {p.max_in_flight}" if p.max_in_flight else f"inputs in flight: {unbounded}")
    if p.predicted:
        r = p.predicted
        console.print(f"predicted: {r.throughput_per_s:.2f} inputs/s, latency {r.latency_s.p50 * 1e3:.1f} ms, "
                      f"{r.bytes_sent:,} bytes sent/input, {r.energy_j_per_inference:.2f} J/input")
    if output:
        console.print(f"plan written to {output}")


def render_report(p: Plan, r: Report, trace: str | None, gantt: str | None) -> None:
    how = "measured" if r.source == "run" else "simulated"
    dilated = f", time dilation {r.time_dilation:.2f}x" if r.time_dilation > 1 else ""
    t = Table(title=f"{how}: {p.model} on {p.cluster.name} ({len(p.stages)} stages, {r.inputs} inputs measured{dilated})")
    t.add_column("figure")
    t.add_column("value", justify="right")
    t.add_row("throughput", f"{r.throughput_per_s:.3f} /s")
    t.add_row("latency p50 / p99", f"{r.latency_s.p50 * 1e3:.1f} / {r.latency_s.p99 * 1e3:.1f} ms")
    for i, s in enumerate(r.per_stage_s):
        t.add_row(f"stage {i} ({', '.join(p.stages[i].devices)})", f"{s * 1e3:.1f} ms/input")
    t.add_row("bubble fraction", f"{r.bubble_fraction:.2f}")
    t.add_row("bytes sent / input", f"{r.bytes_sent:,}")
    for d, b in r.peak_memory_bytes.items():
        t.add_row(f"peak memory {d}", f"{b / 2**20:.1f} MiB")
    if r.energy_j_per_inference is not None:
        t.add_row("energy / input", f"{r.energy_j_per_inference:.2f} J")
    console.print(t)
    for what, path in (("trace", trace), ("gantt chart", gantt)):
        if path:
            console.print(f"{what} written to {Path(path)}")
