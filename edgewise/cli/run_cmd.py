"""`edgewise run` (drive a plan on real processes) and `edgewise worker` (one of those processes)."""
from __future__ import annotations

import shlex
import time
from pathlib import Path
from typing import Callable, Optional

import torch
import typer
from rich.progress import Progress
from rich.table import Table

from edgewise.cli.common import JsonOption, console, emit, err_console
from edgewise.cli.plan_cmd import cost_model, plan_title, render_report, simulation, write_pictures
from edgewise.errors import EdgewiseError
from edgewise.files import check_writable
from edgewise.graph.trace import trace
from edgewise.plan.report import compare as compare_reports
from edgewise.plan.schema import Plan, load_plan
from edgewise.runtime import measure
from edgewise.runtime.inputs import input_source
from edgewise.runtime.launch import emit_event
from edgewise.runtime.partition import split
from edgewise.proc import steady_allocations
from edgewise.runtime.result import stack_outputs, write_result
from edgewise.runtime.topology import seats
from edgewise.runtime.worker import check_device_name, serve
from edgewise.testbed.drive import check_run_device, run_plan
from edgewise.testbed.profiling import testbed_prediction_cost
from edgewise.zoo.spec import load_model


GANTT_INPUTS = 24     # a long stream's spans are too thin to see whole
DeviceOption = typer.Option("cpu", "--device", help="cpu (gloo) or cuda: each process on a GPU of its own "
                            "(LOCAL_RANK modulo the GPUs it sees), activations over NCCL.")


def run(
    plan_file: str = typer.Argument(..., metavar="PLAN.json"),
    inputs: str = typer.Option("32", "--inputs", help="A .pt tensor file, a folder of images, or a number of random inputs."),
    outputs: Optional[str] = typer.Option(None, "--outputs", help="Write the model's outputs here (.pt)."),
    warmup: int = typer.Option(2, "--warmup", min=0, help="Inputs that fill the pipeline and are left out of the figures."),
    compare: bool = typer.Option(False, "--compare", help="Also simulate the plan and show predicted vs measured."),
    trace_file: Optional[str] = typer.Option(None, "--trace", help="Write the measured timeline as a Chrome/Perfetto trace JSON here (with --compare, the predicted one beside it)."),
    gantt: Optional[str] = typer.Option(None, "--gantt", help=f"Write a PNG Gantt chart of {GANTT_INPUTS} measured inputs after the warm-up here (with --compare, the predicted ones above them)."),
    testbed: bool = typer.Option(False, "--testbed", help="Run inside an emulated fleet shaped like the plan's cluster."),
    device: str = DeviceOption,
    print_launch: bool = typer.Option(False, "--print-launch", help="Print the torchrun command for each device and exit."),
    master_addr: str = typer.Option("127.0.0.1", "--master-addr", help="Address of the first device (for --print-launch)."),
    hang_timeout: float = typer.Option(120.0, "--hang-timeout", min=1, help="Stop the run after this many seconds without progress."),
    as_json: bool = JsonOption,
) -> None:
    """Run PLAN.json on one process per device and report what was measured."""
    plan = load_plan(plan_file)
    if print_launch:
        _print_launch(plan, plan_file, master_addr, inputs, device, as_json)
        return
    check_run_device(plan, device, testbed)
    for option, path in (("--outputs", outputs), ("--trace", trace_file), ("--gantt", gantt)):
        if path:
            check_writable(path, option)
    loaded = load_model(plan.model)
    split(loaded.model, loaded.example_inputs, plan)  # a plan that does not fit the model fails here, before any process
    _, available = input_source(None if inputs.isdigit() else inputs, loaded.example_inputs)
    n = int(inputs) if inputs.isdigit() else available
    if n < 1:
        raise EdgewiseError("--inputs: need at least one input")
    with Progress(console=err_console, disable=as_json, transient=True) as bar:
        task = bar.add_task("inputs through the pipeline", total=n)
        ran = run_plan(plan, plan_file, inputs, n, warmup=warmup, testbed=testbed,
                       device=device, outputs=outputs, hang_timeout_s=hang_timeout,
                       on_progress=lambda done: bar.update(task, completed=done),
                       on_note=lambda note: err_console.print(f"note: {note}"))
    first = min(warmup, n - 1)     # as the figures do: a warm-up as long as the stream leaves the last input
    report, shown = ran.report, range(first, first + GANTT_INPUTS)
    measured_panel = (f"{plan_title(plan)}: measured", ran.timeline)
    if not compare:
        write_pictures([measured_panel], trace_file, gantt, shown)
        emit(report, as_json, lambda: render_report(plan, report, trace_file, gantt))
        return
    graph, cost = trace(loaded.model, loaded.example_inputs, plan.model), cost_model(plan.cluster)
    if ran.on_testbed:   # predict the testbed with what was measured inside it
        cost = testbed_prediction_cost(plan, graph, cost)
    sim = simulation(plan, graph, n, cost, warmup)
    write_pictures([(f"{plan_title(plan)}: predicted", sim.timeline), measured_panel], trace_file, gantt, shown)
    rows = compare_reports(sim.report, report)
    result = {"measured": report, "predicted": sim.report,
              "errors": {r.figure: r.error for r in rows}}
    emit(result, as_json, lambda: (render_report(plan, report, trace_file, gantt), _render_compare(rows)))


def worker(
    plan_file: str = typer.Argument(..., metavar="PLAN.json"),
    inputs: str = typer.Option("32", "--inputs"),
    count: int = typer.Option(32, "--count", min=1, help="How many inputs the stream holds."),
    warmup: int = typer.Option(2, "--warmup", min=0),
    result: Optional[str] = typer.Option(None, "--result", help="Folder where rank 0 writes report.json, timeline.json and outputs.pt."),
    threads: int = typer.Option(1, "--threads", min=1),
    time_dilation: float = typer.Option(1.0, "--time-dilation", min=1.0),
    emulate_latency: bool = typer.Option(False, "--emulate-latency", help="Add each link's propagation latency before sending (the testbed's emulation; real networks have their own)."),
    timeout: float = typer.Option(300.0, "--timeout", min=1),
    cpu_quota: Optional[float] = typer.Option(None, "--cpu-quota", min=0.001, help="Emulate a device this many of this host's cores fast: each stage's compute takes at least its CPU time over this (the testbed's emulation, with its cgroup quota)."),
    device: str = DeviceOption,
) -> None:
    """One process of a run (what `torchrun` starts on each device)."""
    steady_allocations()
    torch.set_num_threads(threads)
    plan = load_plan(plan_file)
    loaded = load_model(plan.model)
    fn, _ = input_source(None if inputs.isdigit() else inputs, loaded.example_inputs)
    emit_event(ev="ready")
    records = serve(loaded.model, loaded.example_inputs, plan, fn, count, device=device, latency_scale=time_dilation if emulate_latency else 0.0,
                    timeout_s=timeout, cpu_quota_cores=cpu_quota, on_step=_step_events())
    if records is not None:  # rank 0
        report = measure.report(records, plan, count, warmup, dilation=time_dilation)
        folder = Path(result or ".")
        write_result(folder, report, stack_outputs(records), measure.timeline(records, plan, time_dilation))
        emit_event(ev="result", folder=str(folder))


def _step_events(every_s: float = 0.2) -> Callable[[int], None]:
    """Tell the driver how many inputs this worker has done, at most every `every_s`: a line per
    input would cost a small device more than a fast model's stage."""
    state = {"done": 0, "at": 0.0}

    def on_step(k: int) -> None:
        state["done"] += 1
        now = time.monotonic()
        if now - state["at"] >= every_s:
            state["at"] = now
            emit_event(ev="step", done=state["done"])
    return on_step


def _print_launch(plan: Plan, plan_file: str, master_addr: str, inputs: str, device: str, as_json: bool) -> None:
    check_device_name(device)   # the GPUs are on the devices, not here
    world = len(seats(plan))
    port = 29500
    cmds = []
    for seat in seats(plan):
        cmd = ["torchrun", f"--nnodes={world}", "--nproc-per-node=1", f"--node-rank={seat.rank}",
               f"--master-addr={master_addr}", f"--master-port={port}", "--no-python",
               "edgewise", "worker", plan_file, "--inputs", inputs,
               "--count", inputs if inputs.isdigit() else "32", "--device", device]
        cmds.append({"device": seat.device, "stage": seat.stage, "rank": seat.rank, "command": shlex.join(cmd)})
    emit(cmds, as_json, lambda: [console.print(f"# {c['device']} (stage {c['stage']}, rank {c['rank']})\n{c['command']}")
                                 for c in cmds])


def _render_compare(rows) -> None:
    t = Table(title="predicted (simulate) vs measured (run)")
    for col in ("figure", "predicted", "measured", "error"):
        t.add_column(col, justify="left" if col == "figure" else "right")
    for r in rows:
        t.add_row(r.figure, f"{r.predicted:.4g}", f"{r.measured:.4g}", f"{r.error:+.1%}")
    console.print(t)
