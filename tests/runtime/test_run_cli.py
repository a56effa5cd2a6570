"""`edgewise run` and `edgewise worker` end to end: the pipelined outputs equal the
single-process model's, through the local driver and through `torchrun` itself."""
import json
import os
import shutil
import socket
import subprocess
import sys

import pytest
import torch

from edgewise.graph.stages import export_module
from edgewise.hardware.cluster import Cluster, Device, Node
from edgewise.plan.schema import Plan, Stage
from edgewise.runtime.inputs import random_input
from edgewise.zoo.spec import load_model

DEV = Device(name="pi", peak_flops_per_s={"float32": 1e10}, memory_bytes=1 << 30,
             mem_bandwidth_bytes_per_s=1e9)
EDGEWISE = [sys.executable, "-m", "edgewise"]


def write_plan(tmp_path, spec, cuts, replicas=(1,), device=DEV):
    loaded = load_model(spec)
    names = [n.name for n in export_module(loaded.model, loaded.example_inputs).graph.nodes
             if n.op == "call_function"]
    bounds = [0, *cuts, len(names)]
    stages, devices = [], []
    for i, (a, b) in enumerate(zip(bounds, bounds[1:])):
        r = replicas[i] if i < len(replicas) else 1
        devs = [f"d{len(devices) + j}" for j in range(r)]
        devices += devs
        stages.append(Stage(devices=devs, ops=names[a:b]))
    plan = Plan(model=spec, cluster=Cluster(name="c", nodes=[Node(name=d, device=device) for d in devices]),
                stages=stages)
    path = tmp_path / "plan.json"
    path.write_text(plan.to_json())
    return path, loaded


def expected(loaded, n):
    with torch.inference_mode():
        return torch.cat([loaded.model(*random_input(loaded.example_inputs, k)) for k in range(n)])


def test_run_outputs_equal_single_process_with_replicated_stages(tmp_path, model_spec):
    plan, loaded = write_plan(tmp_path, model_spec, cuts=[2, 5], replicas=(2, 2, 1))
    out = tmp_path / "out.pt"
    proc = subprocess.run(EDGEWISE + ["run", str(plan), "--inputs", "6", "--outputs", str(out), "--json"],
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["source"] == "run" and report["throughput_per_s"] > 0
    assert len(report["per_stage_s"]) == 3 and report["bytes_sent"] > 0
    assert torch.allclose(torch.load(out, weights_only=True), expected(loaded, 6), atol=1e-5)


def test_print_launch_gives_one_torchrun_line_per_device(tmp_path, model_spec):
    plan, _ = write_plan(tmp_path, model_spec, cuts=[3])
    proc = subprocess.run(EDGEWISE + ["run", str(plan), "--print-launch", "--master-addr", "198.18.0.1", "--json"],
                          capture_output=True, text=True, timeout=120)
    cmds = json.loads(proc.stdout)
    assert [c["rank"] for c in cmds] == [0, 1]
    assert all("torchrun" in c["command"] and "--master-addr=198.18.0.1" in c["command"] for c in cmds)


def test_the_printed_launch_runs_under_torchrun(tmp_path, model_spec):
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    plan, loaded = write_plan(tmp_path, model_spec, cuts=[4])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = tmp_path / "result"
    procs = [subprocess.Popen([torchrun, "--nnodes=2", "--nproc-per-node=1", f"--node-rank={r}",
                               "--master-addr=127.0.0.1", f"--master-port={port}", "--no-python",
                               *EDGEWISE, "worker", str(plan), "--count", "4", "--result", str(result)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for r in range(2)]
    logs = [p.communicate(timeout=240)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), logs
    assert torch.allclose(torch.load(result / "outputs.pt", weights_only=True), expected(loaded, 4), atol=1e-5)
    assert json.loads((result / "report.json").read_text())["inputs"] == 2


@pytest.mark.parametrize("mutate, match", [
    (lambda d: d.update(schema=7), "schema 7 is not supported"),
    (lambda d: d.update(model="zoo:no_such_model_anywhere"), "no_such_model"),
    (lambda d: d["stages"][0]["ops"].append("not_an_op"), "not_an_op"),
    (lambda d: d["stages"][0].update(devices=["ghost"]), None),
    (lambda d: d.update(max_in_flight=0), "max_in_flight"),
    (lambda d: d.update(max_in_flight="many"), "max_in_flight"),
])
def test_mismatched_plans_fail_in_one_line_before_any_process(tmp_path, model_spec, mutate, match):
    plan, _ = write_plan(tmp_path, model_spec, cuts=[3])
    data = json.loads(plan.read_text())
    mutate(data)
    plan.write_text(json.dumps(data))
    proc = subprocess.run(EDGEWISE + ["run", str(plan), "--inputs", "2"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:")
    if match:
        assert match in lines[0]


@pytest.mark.parametrize("env, match", [
    ({}, "RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT not set"),
    ({"RANK": "0", "WORLD_SIZE": "9", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29123"}, "needs 2 processes"),
    ({"RANK": "x", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29123"}, "must be integers"),
])
def test_worker_started_wrongly_says_so_in_one_line(tmp_path, model_spec, env, match):
    plan, _ = write_plan(tmp_path, model_spec, cuts=[3])
    clean = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    proc = subprocess.run(EDGEWISE + ["worker", str(plan)], env={**clean, **env}, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and match in lines[0]


@pytest.mark.parametrize("value", ["0", "-1", "fast"])
def test_worker_refuses_a_cpu_quota_that_is_not_a_positive_number(tmp_path, model_spec, value):
    plan, _ = write_plan(tmp_path, model_spec, cuts=[3])
    proc = subprocess.run(EDGEWISE + ["worker", str(plan), "--cpu-quota", value], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "--cpu-quota" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("bound", [1, 3])
def test_run_with_an_in_flight_bound_gives_the_same_outputs(tmp_path, model_spec, bound):
    # replicas at both ends: the first device forwards inputs and every last replica sends notes
    plan, loaded = write_plan(tmp_path, model_spec, cuts=[3], replicas=(2, 2))
    bounded = Plan.model_validate_json(plan.read_text()).model_copy(update={"max_in_flight": bound})
    plan.write_text(bounded.to_json())
    out = tmp_path / "out.pt"
    proc = subprocess.run(EDGEWISE + ["run", str(plan), "--inputs", "9", "--outputs", str(out), "--json"],
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    assert torch.allclose(torch.load(out, weights_only=True), expected(loaded, 9), atol=1e-5)


def test_run_draws_its_measured_timeline_beside_the_prediction(tmp_path, model_spec):
    plan = tmp_path / "plan.json"   # from the planner, whose graph --compare simulates
    made = subprocess.run(EDGEWISE + ["plan", model_spec, "-c", "slow-link", "--planner", "even", "-o", str(plan)],
                          capture_output=True, text=True, timeout=240)
    assert made.returncode == 0, made.stderr
    trace, gantt = tmp_path / "t" / "trace.json", tmp_path / "gantt.png"
    proc = subprocess.run(EDGEWISE + ["run", str(plan), "--inputs", "6", "--warmup", "1", "--compare", "--json",
                                      "--trace", str(trace), "--gantt", str(gantt)],
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    events = json.loads(trace.read_text())["traceEvents"]
    panels = {e["pid"]: e["args"]["name"] for e in events if e["name"] == "process_name"}
    assert sorted(p.rsplit(": ", 1)[1] for p in panels.values()) == ["measured", "predicted"]
    measured = next(pid for pid, name in panels.items() if name.endswith("measured"))
    spans = [e for e in events if e["pid"] == measured and e["ph"] == "X"]
    compute = {(e["args"]["stage"], e["args"]["input"]): e for e in spans if e["args"]["kind"] == "compute"}
    stages = [s["devices"] for s in json.loads(plan.read_text())["stages"]]
    assert len(stages) >= 2 and all(len(d) == 1 for d in stages)
    assert sorted(compute) == [(s, k) for s in range(len(stages)) for k in range(6)]
    sends = {(e["args"]["device"], e["args"]["input"]): e for e in spans if e["args"]["kind"] == "send"}
    assert len(sends) == 6 * (len(stages) - 1)
    # each stage computed an input after the one before it had finished it and sent it off (across
    # processes the common clock agrees within a round trip's half: 200 µs leave room for that)
    for s in range(len(stages) - 1):
        for k in range(6):
            this, sent, following = compute[s, k], sends[stages[s][0], k], compute[s + 1, k]
            assert this["ts"] + this["dur"] <= sent["ts"] + 1 and sent["ts"] <= following["ts"] + 200
    assert gantt.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("option", ["--trace", "--gantt", "--outputs"])
def test_run_refuses_a_path_it_could_not_write_before_any_process(tmp_path, model_spec, option):
    plan, _ = write_plan(tmp_path, model_spec, cuts=[3])
    (tmp_path / "a_file").write_text("x")
    for bad in (tmp_path / "a_file" / "out", tmp_path):       # under a file; a folder
        proc = subprocess.run(EDGEWISE + ["run", str(plan), "--inputs", "2", option, str(bad)],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {option}"), proc.stderr
