"""`edgewise devices` (the catalogue), `edgewise clusters` (built-in fleets) and `edgewise profile`
(measure this machine into the profile database and fit the cost model from it)."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.progress import Progress
from rich.table import Table

from edgewise.cli.common import JsonOption, console, emit, err_console
from edgewise.cost.runtime import LINEAR_COSTS
from edgewise.errors import EdgewiseError
from edgewise.hardware.catalogue import catalogue, device
from edgewise.hardware.cluster import Cluster, Device
from edgewise.hardware.cluster_io import builtin_clusters, load_cluster


def _si(x: float, unit: str) -> str:
    """4.72e11, 'FLOP/s' -> '472 GFLOP/s'; with unit '' a compact '472G' for table cells ('-' for 0)."""
    sep = " " if unit else ""
    if not x and not unit:
        return "-"
    for scale, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{sep}{prefix}{unit}"
    return f"{x:.3g}{sep}{unit}"


def _gib(n: float) -> str:
    return f"{n / 2 ** 30:.3g} GiB"



def devices(
    name: Optional[str] = typer.Argument(None, help="Show one device with the source of every figure."),
    as_json: bool = JsonOption,
) -> None:
    """The catalogue of real devices (and `local`, once `edgewise profile` has measured this machine)."""
    if name is not None:
        d = device(name)
        emit(d, as_json, lambda: _render_device(d))
        return
    devs = list(catalogue().values())
    emit(devs, as_json, lambda: _render_devices(devs))


def _render_devices(devs: list[Device]) -> None:
    t = Table(title="device catalogue: peak FLOP/s (FP16 = best of float16/bfloat16), memory, its bandwidth "
                    "in B/s, idle/busy watts. `edgewise devices NAME` shows each figure's source.")
    for col in ("name", "kind", "FP32", "FP16", "INT8", "mem", "mem BW", "W"):
        t.add_column(col, justify="left" if col in ("name", "kind") else "right", no_wrap=True)
    for d in devs:
        half = max(d.peak_flops_per_s.get("float16", 0.0), d.peak_flops_per_s.get("bfloat16", 0.0))
        t.add_row(d.name, d.kind, _si(d.peak("float32"), ""), _si(half, ""), _si(d.peak_flops_per_s.get("int8", 0.0), ""),
                  f"{d.memory_bytes / 2 ** 30:.3g}Gi", _si(d.mem_bandwidth_bytes_per_s, ""),
                  f"{d.idle_power_w:g}/{d.busy_power_w:g}")
    console.print(t)


def _render_device(d: Device) -> None:
    t = Table(title=f"{d.name} ({d.kind}): {d.summary}")
    t.add_column("figure")
    t.add_column("value", justify="right")
    t.add_column("source")
    values = {**{f"peak_flops_per_s.{k}": _si(v, "FLOP/s") for k, v in d.peak_flops_per_s.items()},
              "memory_bytes": _gib(d.memory_bytes), "mem_bandwidth_bytes_per_s": _si(d.mem_bandwidth_bytes_per_s, "B/s"),
              "idle_power_w": f"{d.idle_power_w:g} W", "busy_power_w": f"{d.busy_power_w:g} W"}
    for key, value in values.items():
        t.add_row(key, value, d.sources.get(key, ""))
    console.print(t)


def clusters(
    cluster: Optional[str] = typer.Argument(None, help="Show (and check) one cluster: a built-in name or a YAML file."),
    as_json: bool = JsonOption,
) -> None:
    """The built-in clusters; with CLUSTER, that cluster's devices, links and shared media."""
    if cluster is not None:
        c = load_cluster(cluster)
        emit(c, as_json, lambda: _render_cluster(c))
        return
    loaded = {name: (load_cluster(name), text) for name, text in builtin_clusters().items()}
    listing = [{"name": n, "description": text, "devices": _device_counts(c), "network": _network(c)}
               for n, (c, text) in loaded.items()]
    emit(listing, as_json, lambda: _render_clusters(listing))


def _device_counts(c: Cluster) -> dict[str, int]:
    counts: dict[str, int] = {}
    for n in c.nodes:
        counts[n.device.name] = counts.get(n.device.name, 0) + 1
    return counts


def _network(c: Cluster) -> str:
    parts = [f"medium {m.name}: {len(m.members)} devices share {_si(m.bandwidth_bytes_per_s * 8, 'bit/s')}, "
             f"{m.latency_s * 1e3:g} ms" for m in c.media]
    if c.links:
        rates = sorted({_si(l.bandwidth_bytes_per_s * 8, "bit/s") for l in c.links})
        parts.append(f"{len(c.links)} links at {', '.join(rates)}")
    return "; ".join(parts) or "no links"


def _render_clusters(listing: list[dict]) -> None:
    t = Table(title="built-in clusters (`edgewise clusters NAME` shows one; any YAML file works the same)")
    for col in ("name", "devices", "network", "description"):
        t.add_column(col)
    for row in listing:
        t.add_row(row["name"], ", ".join(f"{k} x{v}" for k, v in row["devices"].items()), row["network"],
                  row["description"])
    console.print(t)


def _render_cluster(c: Cluster) -> None:
    t = Table(title=f"cluster {c.name}: {len(c.nodes)} devices")
    for col in ("node", "device", "FP32", "memory"):
        t.add_column(col)
    for n in c.nodes:
        t.add_row(n.name, n.device.name, _si(n.device.peak("float32"), "FLOP/s"), _gib(n.device.memory_bytes))
    console.print(t)
    for link in c.links:
        console.print(f"link {link.name}: {_si(link.bandwidth_bytes_per_s * 8, 'bit/s')}, {link.latency_s * 1e3:g} ms")
    for m in c.media:
        console.print(f"medium {m.name} (shared by {', '.join(m.members)}): "
                      f"{_si(m.bandwidth_bytes_per_s * 8, 'bit/s')}, {m.latency_s * 1e3:g} ms")


def profile(
    model: Optional[str] = typer.Argument(None, help="Also time each op of this model (zoo:NAME, file.py:factory, file.onnx)."),
    db: Optional[Path] = typer.Option(None, "--db", help="Profile database [default: $EDGEWISE_PROFILE_DB or ~/.cache/edgewise/profile.db]."),
    quick: bool = typer.Option(False, "--quick", help="A small sweep that finishes in seconds."),
    on: str = typer.Option("cpu", "--device", help="What to measure: cpu (recorded as `local`) or cuda (`local-cuda`)."),
    repeats: Optional[int] = typer.Option(None, "--repeats", min=1, help="Timed calls per measurement (median) [default: 3 with --quick, else 10]."),
    testbed_device: Optional[str] = typer.Option(None, "--testbed-device", help="Measure inside this device of the emulated --cluster instead (recorded as `testbed:<catalogue name>`)."),
    cluster: str = typer.Option("edge-fleet", "--cluster", help="The cluster whose device --testbed-device names."),
    rounds: Optional[int] = typer.Option(None, "--rounds", min=1, help="With --testbed-device: profile this many times, each in a fresh process; predictions take each op's median [default: 3 with MODEL, else 1]."),
    stages_of: Optional[Path] = typer.Option(None, "--stages", help="Measure what each stage of this Plan JSON that takes its input in costs the runtime inside its emulated devices (after its model was profiled there with --testbed-device), for the prediction of `run --testbed --compare`."),
    record_as: Optional[str] = typer.Option(None, "--record-as", hidden=True),
    record_cluster: Optional[str] = typer.Option(None, "--record-cluster", hidden=True),
    time_dilation: float = typer.Option(1.0, "--time-dilation", min=1.0, hidden=True),
    cpu_quota: Optional[float] = typer.Option(None, "--cpu-quota", min=0.001, hidden=True),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, hidden=True),
    as_json: bool = JsonOption,
) -> None:
    """Measure this machine (matmul, conv, memory bandwidth; each op of MODEL) into the profile database,
    then fit the cost model's efficiencies from it."""
    from dataclasses import asdict, replace

    import torch

    from edgewise.cost.fit import fit_devices
    from edgewise.cost.roofline import op_class
    from edgewise.hardware import profiler
    from edgewise.hardware.profile_db import ProfileDB, default_db_path
    from edgewise.proc import computing_threads, steady_allocations

    if rounds is not None and testbed_device is None:
        raise EdgewiseError("--rounds: only with --testbed-device (a profile of this machine is taken once)")
    if stages_of is not None:
        if model or testbed_device:
            raise EdgewiseError("--stages: the plan names its model and cluster; give neither MODEL nor --testbed-device")
        _profile_stages(stages_of, str(db) if db else None, as_json)
        return
    if testbed_device is not None:
        from edgewise.testbed.profiling import check_testbed_device, profile_in_testbed
        from edgewise.zoo.spec import saved_program
        the_cluster = load_cluster(cluster)
        check_testbed_device(the_cluster, testbed_device)   # before exporting the model, which takes a while
        with saved_program(model) as program:
            result = profile_in_testbed(the_cluster, testbed_device, model, quick, repeats,
                                        str(db) if db else None, program=program,
                                        rounds=rounds or (3 if model else 1))
        emit(result, as_json, lambda: console.print(f"measured inside {testbed_device!r} into {result['db']} "
                                                    f"as {result['device']['name']}{_model_costs(result)}"))
        return
    if threads:
        torch.set_num_threads(threads)
    steady_allocations()    # as every worker does: the ops are timed as they will run
    dev = profiler.torch_device(on)
    path = db or default_db_path()
    with ProfileDB(path) as store:      # opened first: a bad --db fails before minutes of measuring
        target = None
        if model is not None:
            from edgewise.graph.trace import trace
            from edgewise.zoo.spec import load_model
            loaded = load_model(model)
            target = (loaded.model, loaded.example_inputs, trace(loaded.model, loaded.example_inputs, model))
        with Progress(console=err_console, disable=as_json, transient=True) as bar:
            tasks: dict[str, int] = {}

            def progress(phase: str, done: int, total: int) -> None:
                if phase not in tasks:
                    tasks[phase] = bar.add_task(phase, total=total)
                bar.update(tasks[phase], completed=done)

            clock = profiler.Clock(cpu_quota, computing_threads() if cpu_quota else ())
            run, rows = profiler.profile_device(dev, op_class, quick, repeats or (3 if quick else 10), target,
                                                command=" ".join(["edgewise", *sys.argv[1:]]), progress=progress,
                                                clock=clock)
            if dev.type == "cpu" and cpu_quota is None:
                # inside the testbed, testbed/profiling.py measures them with a peer in another device
                from edgewise.runtime import costs
                rows += costs.measure(messages={size: 40 for size in costs.SIZES} if quick else None,
                                      progress=lambda done, total: progress("the runtime's own costs", done, total))
        if record_as:   # measured inside an emulated device: its own label, times in the cluster's time
            # and in which cluster's testbed: its quota, period and dilation shape the times
            run = replace(run, device=record_as, device_model=f"emulated on {run.device_model}",
                          software={**run.software, "cluster": record_cluster, "dilation": time_dilation})
            rows = [replace(m, time_s=m.time_s / time_dilation) for m in rows]
        run_id = store.record(run, rows)
        measured = store.measured_device(run.device)
        fitted = fit_devices(store, devices=[run.device])[run.device]
    result = {
        "db": str(path), "run_id": run_id, "host": run.host, "device": measured,
        "microbenchmarks": [{"kind": m.kind, "dtype": m.dtype, "shape": m.shape, "time_s": m.time_s,
                             "flops_per_s": m.flops / m.time_s, "bytes_per_s": m.bytes / m.time_s}
                            for m in rows if m.kind not in ("op", "runtime")],
        "runtime": asdict(fitted.runtime) if fitted.runtime else None,
        "ops": {"model": model, "count": sum(m.kind == "op" for m in rows),
                "total_time_s": sum(m.time_s for m in rows if m.kind == "op")} if model else None,
        "fitted": {"compute": fitted.efficiency.compute, "memory": fitted.efficiency.memory,
                   "overhead_s": fitted.efficiency.overhead_s, "rows_used": fitted.rows_used},
    }
    emit(result, as_json, lambda: _render_profile(result))


def _profile_stages(path: Path, db: str | None, as_json: bool) -> None:
    """`profile --stages PLAN`: what each of the plan's receiving stages costs the runtime in its testbed."""
    from edgewise.plan.schema import load_plan
    from edgewise.testbed.commands import can_emulate
    from edgewise.testbed.profiling import measure_stage_costs_in_testbed
    from edgewise.zoo.spec import saved_program
    plan = load_plan(str(path))
    if (reason := can_emulate()):
        raise EdgewiseError(f"--stages: {reason.split(';')[0]}")
    with saved_program(plan.model) as program, err_console.status("measuring the plan's stages") as status:
        measured = measure_stage_costs_in_testbed(plan, program, db, progress=lambda what: status.update(f"measuring {what}"))
    emit({"plan": str(path), "stages_measured": measured}, as_json,
         lambda: console.print(f"measured {measured} stage(s) of {path} inside cluster {plan.cluster.name}'s testbed"
                               if measured else f"{path}: no stage takes its input in from another device; nothing to measure"))


def _model_costs(r: dict) -> str:
    """What the model costs the runtime in the device, where it was measured, as a clause."""
    rt = r.get("runtime") or {}
    parts = ([f"a step woken for each input {rt['wake_s'] * 1e6:.0f} us"] if rt.get("wake_s") else []) + \
            ([f"a message received {rt['received_s'] * 1e6:.0f} us"] if rt.get("received_s") is not None else []) + \
            ([f"an input served alone {rt['alone_s'] * 1e6:.0f} us"] if rt.get("alone_s") is not None else [])
    spread = f"; its step varies by {rt['spread_s'] * 1e6:.0f} us" if rt.get("spread_s") is not None else ""
    return (f"; beyond the back-to-back compute: {', '.join(parts)}" if parts else "") + spread


def _render_profile(r: dict) -> None:
    t = Table(title=f"measured on {r['host']} as device {r['device'].name} ({r['device'].summary})")
    for col in ("benchmark", "dtype", "shape", "median time", "achieved"):
        t.add_column(col, justify="right" if col in ("median time", "achieved") else "left")
    for m in r["microbenchmarks"]:
        rate = _si(m["flops_per_s"], "FLOP/s") if m["flops_per_s"] else _si(m["bytes_per_s"], "B/s")
        t.add_row(m["kind"], m["dtype"], " x ".join("x".join(map(str, s)) for s in m["shape"]),
                  f"{m['time_s'] * 1e6:,.1f} us", rate if m["kind"] != "overhead" else "")
    console.print(t)
    if r["ops"]:
        console.print(f"{r['ops']['count']} ops of {r['ops']['model']} timed, "
                      f"{r['ops']['total_time_s'] * 1e3:.2f} ms in all")
    f = r["fitted"]
    effs = ", ".join(f"{k} {v:.2f} ({f['rows_used'][k]} rows)" for k, v in f["compute"].items())
    console.print(f"fitted efficiencies: {effs}; memory {f['memory']:.2f} ({f['rows_used']['memory']} rows); "
                  f"per-op overhead {f['overhead_s'] * 1e6:.1f} us")
    if r["runtime"]:
        costs = "; ".join(f"{what} {c['fixed_s'] * 1e6:.0f} us + {c['per_byte_s'] * 1e9:.2f} ns/B"
                          for what in LINEAR_COSTS for c in [r["runtime"][what]])
        console.print(f"the runtime's own costs (CPU): {costs}")
    console.print(f"stored as run {r['run_id']} in {r['db']}")
