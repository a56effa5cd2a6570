"""`edgewise run` (drive a plan on real processes) and `edgewise worker` (one of those processes)."""
from __future__ import annotations

import os
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Optional

import torch
import typer
from rich.progress import Progress
from rich.table import Table

from edgewise.cli.common import JsonOption, console, emit, err_console
from edgewise.cli.plan_cmd import simulate_plan
from edgewise.cli.testbed_cmd import build_testbed
from edgewise.errors import EdgewiseError
from edgewise.files import write_atomic
from edgewise.graph.trace import trace
from edgewise.plan.report import compare as compare_reports
from edgewise.plan.schema import Plan, load_plan
from edgewise.runtime import measure
from edgewise.runtime.inputs import input_source
from edgewise.runtime.launch import Launch, emit_event, free_port, run_workers
from edgewise.runtime.partition import split
from edgewise.runtime.result import read_result, stack_outputs, write_result
from edgewise.runtime.topology import Seat, seats
from edgewise.runtime.worker import serve
from edgewise.testbed import netns
from edgewise.testbed.commands import can_emulate
from edgewise.testbed.layout import Layout
from edgewise.zoo.spec import load_model


def run(
    plan_file: str = typer.Argument(..., metavar="PLAN.json"),
    inputs: str = typer.Option("32", "--inputs", help="A .pt tensor file, a folder of images, or a number of random inputs."),
    outputs: Optional[str] = typer.Option(None, "--outputs", help="Write the model's outputs here (.pt)."),
    warmup: int = typer.Option(2, "--warmup", min=0, help="Inputs that fill the pipeline and are left out of the figures."),
    compare: bool = typer.Option(False, "--compare", help="Also simulate the plan and show predicted vs measured."),
    testbed: bool = typer.Option(False, "--testbed", help="Run inside an emulated fleet shaped like the plan's cluster."),
    print_launch: bool = typer.Option(False, "--print-launch", help="Print the torchrun command for each device and exit."),
    master_addr: str = typer.Option("127.0.0.1", "--master-addr", help="Address of the first device (for --print-launch)."),
    hang_timeout: float = typer.Option(120.0, "--hang-timeout", min=1, help="Stop the run after this many seconds without progress."),
    as_json: bool = JsonOption,
) -> None:
    """Run PLAN.json on one process per device and report what was measured."""
    plan = load_plan(plan_file)
    if print_launch:
        _print_launch(plan, plan_file, master_addr, inputs, as_json)
        return
    loaded = load_model(plan.model)
    split(loaded.model, loaded.example_inputs, plan)  # a plan that does not fit the model fails here, before any process
    _, available = input_source(None if inputs.isdigit() else inputs, loaded.example_inputs)
    n = int(inputs) if inputs.isdigit() else available
    if n < 1:
        raise EdgewiseError("--inputs: need at least one input")
    report, out_file = _drive(plan, plan_file, inputs, n, warmup, testbed, hang_timeout, quiet=as_json)
    if outputs:
        write_atomic(outputs, out_file.read_bytes())
    if not compare:
        emit(report, as_json, lambda: _render(plan, report))
        return
    predicted = simulate_plan(plan, trace(loaded.model, loaded.example_inputs, plan.model), n, None, None)
    rows = compare_reports(predicted, report)
    result = {"measured": report, "predicted": predicted,
              "errors": {r.figure: r.error for r in rows}}
    emit(result, as_json, lambda: (_render(plan, report), _render_compare(rows)))


def _drive(plan: Plan, plan_file: str, inputs: str, n: int, warmup: int, testbed: bool,
           hang_timeout: float, quiet: bool):
    """Start every worker (inside the emulated fleet when asked and possible) and read rank 0's result."""
    layout = None
    if testbed:
        reason = can_emulate()
        if reason:
            err_console.print(f"note: {reason}")
        else:
            layout = build_testbed(plan.cluster)
    try:
        return _start(plan, plan_file, inputs, n, warmup, layout, hang_timeout, quiet)
    finally:
        if layout is not None:
            netns.down()


def _start(plan: Plan, plan_file: str, inputs: str, n: int, warmup: int, layout: Layout | None,
           hang_timeout: float, quiet: bool):
    result_dir = Path(tempfile.mkdtemp(prefix="edgewise-run-"))
    world = len(seats(plan))
    dilation = layout.dilation if layout else 1.0
    master = layout.slot(seats(plan)[0].device).address if layout else "127.0.0.1"
    port = free_port() if layout is None else 29500
    local_threads = max(1, (os.cpu_count() or 1) // world)

    def argv(seat: Seat) -> list[str]:
        threads = layout.slot(seat.device).threads if layout else local_threads
        cmd = [sys.executable, "-m", "edgewise", "worker", plan_file, "--inputs", inputs, "--count", str(n),
               "--warmup", str(warmup), "--result", str(result_dir), "--threads", str(threads),
               "--time-dilation", str(dilation)]
        return netns.launch_argv(layout, seat.device, cmd) if layout else cmd

    def env(seat: Seat) -> dict[str, str]:
        return {"RANK": str(seat.rank), "WORLD_SIZE": str(world), "LOCAL_RANK": "0",
                "MASTER_ADDR": master, "MASTER_PORT": str(port),
                "GLOO_SOCKET_IFNAME": "eth0" if layout else "lo"}

    # A device emulated at a fraction of a core also starts (imports, export) that much slower.
    slowest = min((s.cpu_quota_cores for s in layout.slots), default=1.0) if layout else 1.0
    with Progress(console=err_console, disable=quiet, transient=True) as bar:
        task = bar.add_task("inputs through the pipeline", total=n)
        last = len(plan.stages) - 1

        def on_event(seat: Seat, ev: dict) -> None:
            if ev.get("ev") == "step" and seat.stage == last:
                bar.advance(task)

        run_workers(plan, Launch(argv_for=argv, env_for=env, hang_s=hang_timeout / min(1.0, slowest),
                                 on_event=on_event))
    return read_result(result_dir)


def worker(
    plan_file: str = typer.Argument(..., metavar="PLAN.json"),
    inputs: str = typer.Option("32", "--inputs"),
    count: int = typer.Option(32, "--count", min=1, help="How many inputs the stream holds."),
    warmup: int = typer.Option(2, "--warmup", min=0),
    result: Optional[str] = typer.Option(None, "--result", help="Folder where rank 0 writes report.json and outputs.pt."),
    threads: int = typer.Option(1, "--threads", min=1),
    time_dilation: float = typer.Option(1.0, "--time-dilation", min=1.0),
    timeout: float = typer.Option(300.0, "--timeout", min=1),
) -> None:
    """One process of a run (what `torchrun` starts on each device)."""
    torch.set_num_threads(threads)
    plan = load_plan(plan_file)
    loaded = load_model(plan.model)
    fn, _ = input_source(None if inputs.isdigit() else inputs, loaded.example_inputs)
    emit_event(ev="ready")
    records = serve(loaded.model, loaded.example_inputs, plan, fn, count, latency_scale=time_dilation,
                    timeout_s=timeout, on_step=lambda k: emit_event(ev="step", k=k))
    if records is not None:  # rank 0
        report = measure.report(records, plan, count, warmup, dilation=time_dilation)
        folder = Path(result or ".")
        write_result(folder, report, stack_outputs(records))
        emit_event(ev="result", folder=str(folder))


def _print_launch(plan: Plan, plan_file: str, master_addr: str, inputs: str, as_json: bool) -> None:
    world = len(seats(plan))
    port = 29500
    cmds = []
    for seat in seats(plan):
        cmd = ["torchrun", f"--nnodes={world}", "--nproc-per-node=1", f"--node-rank={seat.rank}",
               f"--master-addr={master_addr}", f"--master-port={port}", "--no-python",
               "edgewise", "worker", plan_file, "--inputs", inputs,
               "--count", inputs if inputs.isdigit() else "32"]
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


def _render(plan: Plan, report) -> None:
    t = Table(title=f"measured: {plan.model} on {plan.cluster.name} ({len(plan.stages)} stages)")
    t.add_column("figure")
    t.add_column("value", justify="right")
    t.add_row("throughput", f"{report.throughput_per_s:.3f} /s")
    t.add_row("latency p50 / p99", f"{report.latency_s.p50 * 1e3:.1f} / {report.latency_s.p99 * 1e3:.1f} ms")
    for i, s in enumerate(report.per_stage_s):
        t.add_row(f"stage {i} ({', '.join(plan.stages[i].devices)})", f"{s * 1e3:.1f} ms/input")
    t.add_row("bubble fraction", f"{report.bubble_fraction:.2f}")
    t.add_row("bytes sent / input", f"{report.bytes_sent:,}")
    console.print(t)
