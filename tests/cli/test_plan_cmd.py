"""`edgewise plan` and `edgewise simulate`: a plan file round-trips into a simulation; bad input is one line."""
import json
import subprocess
import sys
import textwrap

import pytest

from edgewise.cli import plan_cmd
from edgewise.errors import EdgewiseError

EDGEWISE = [sys.executable, "-m", "edgewise"]
FACTORY = textwrap.dedent('''
    import torch
    from torch import nn

    def make():
        torch.manual_seed(0)
        net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                            nn.Flatten(), nn.Linear(8 * 16 * 16, 10))
        return net.eval(), (torch.randn(1, 3, 16, 16),)
''')


@pytest.fixture
def model_spec(tmp_path):
    path = tmp_path / "net.py"
    path.write_text(FACTORY)
    return f"{path}:make"


def edgewise(*args):
    return subprocess.run([*EDGEWISE, *args], capture_output=True, text=True, timeout=120)


def make_plan(tmp_path, model_spec, cluster="pi-fleet"):
    out = tmp_path / "plan.json"
    plan_cmd.plan(model=model_spec, cluster=cluster, objective="throughput", batch=1, planner="edgewise",
                  in_flight=None, output=str(out), as_json=True)
    return out


def simulate(path, **kw):
    args = dict(plan_file=str(path), inputs=8, trace=None, gantt=None, as_json=True)
    plan_cmd.simulate(**{**args, **kw})


def test_plan_then_simulate_end_to_end(tmp_path, model_spec):
    plan_file, trace, gantt = tmp_path / "p.json", tmp_path / "t.json", tmp_path / "g.png"
    r = edgewise("plan", model_spec, "--cluster", "edge-fleet", "-o", str(plan_file), "--json")
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)
    assert plan["schema"] == 1 and plan["model"] == model_spec and plan["objective"] == "throughput"
    assert json.loads(plan_file.read_text()) == plan
    r = edgewise("simulate", str(plan_file), "--inputs", "12", "--trace", str(trace), "--gantt", str(gantt), "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["source"] == "simulate" and report["throughput_per_s"] > 0
    assert set(report["peak_memory_bytes"]) == {d for st in plan["stages"] for d in st["devices"]}
    assert json.loads(trace.read_text())["traceEvents"] and gantt.read_bytes()[:4] == b"\x89PNG"


def test_bad_objective_exits_2_with_one_line(model_spec):
    r = edgewise("plan", model_spec, "--objective", "speed")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--objective 'speed'" in r.stderr


@pytest.mark.parametrize("objective", ["throughput", "latency", "energy"])
def test_every_objective_plans(tmp_path, model_spec, objective, capsys):
    plan_cmd.plan(model=model_spec, cluster="pi-jetson-lan", objective=objective, batch=2, planner="edgewise",
                  in_flight=None, output=None, as_json=True)
    plan = json.loads(capsys.readouterr().out)
    assert plan["objective"] == objective and plan["batch"] == 2 and plan["predicted"]["throughput_per_s"] > 0


def test_a_given_in_flight_bound_is_written_into_the_plan(tmp_path, model_spec, capsys):
    plan_cmd.plan(model=model_spec, cluster="pi-jetson-lan", objective="throughput", batch=1, planner="edgewise",
                  in_flight=3, output=None, as_json=True)
    assert json.loads(capsys.readouterr().out)["max_in_flight"] == 3


def test_unknown_planner_and_cluster_are_refused(model_spec):
    with pytest.raises(EdgewiseError, match="--planner 'fast'"):
        plan_cmd.plan(model=model_spec, cluster="pi-fleet", objective="throughput", batch=1, planner="fast",
                      output=None, as_json=True)
    with pytest.raises(EdgewiseError):
        plan_cmd.plan(model=model_spec, cluster="no-such-fleet", objective="throughput", batch=1,
                      planner="edgewise", output=None, as_json=True)


def test_simulate_refuses_wrong_schema_unknown_device_and_foreign_ops(tmp_path, model_spec):
    good = json.loads(make_plan(tmp_path, model_spec).read_text())
    cases = {
        "schema": ({**good, "schema": 2}, "schema 2 is not supported"),
        "device": ({**good, "stages": [{**good["stages"][0], "devices": ["ghost"]}] + good["stages"][1:]}, "ghost"),
        "ops": ({**good, "stages": [{**good["stages"][0], "ops": ["conv_zzz"] + good["stages"][0]["ops"][1:]}]
                 + good["stages"][1:]}, "another model"),
    }
    for name, (data, message) in cases.items():
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(data))
        with pytest.raises(EdgewiseError, match=message):
            simulate(path)


def test_simulate_missing_or_broken_file(tmp_path):
    with pytest.raises(EdgewiseError, match="no such plan file"):
        simulate(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(EdgewiseError, match="not a plan JSON"):
        simulate(tmp_path / "bad.json")


@pytest.mark.parametrize("value", ["0", "-2", "many"])
def test_a_bound_that_is_not_a_positive_integer_is_refused_before_planning(tmp_path, model_spec, value):
    out = tmp_path / "plan.json"
    r = edgewise("plan", model_spec, "--max-in-flight", value, "-o", str(out))
    assert r.returncode == 2 and "--max-in-flight" in r.stderr and "Traceback" not in r.stderr
    assert not out.exists()
