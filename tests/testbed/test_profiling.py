"""`edgewise profile --testbed-device`: measured inside the emulated device, recorded under its own
label in the one profile database, and used to predict runs on the testbed."""
import json
import os
import subprocess
import sys

import pytest

from edgewise.cost.roofline import CostModel
from edgewise.errors import EdgewiseError
from edgewise.hardware.cluster_io import load_cluster
from edgewise.hardware.profile_db import ProfileDB
from edgewise.testbed import netns
from edgewise.testbed.commands import can_emulate
from edgewise.testbed.host import host_core_flops, latest_runtime_cost
from edgewise.testbed.layout import plan_layout
from edgewise.testbed import profiling

EDGEWISE = [sys.executable, "-m", "edgewise"]


@pytest.mark.skipif(can_emulate() is not None, reason=str(can_emulate()))
def test_profile_inside_an_emulated_pi_is_throttled_and_labelled(tmp_path, monkeypatch):
    db = tmp_path / "p.db"
    monkeypatch.setenv("EDGEWISE_PROFILE_DB", str(db))
    host = subprocess.run(EDGEWISE + ["profile", "--quick", "--json"], capture_output=True, text=True, timeout=300)
    assert host.returncode == 0, host.stderr
    inside = subprocess.run(EDGEWISE + ["profile", "--quick", "--json", "--testbed-device", "pi0"],
                            capture_output=True, text=True, timeout=300)
    assert inside.returncode == 0, inside.stderr
    result = json.loads(inside.stdout)
    assert result["device"]["name"] == "testbed:raspberry-pi-4"
    # the runtime's own costs were measured in there too (a peer in another emulated device)
    assert result["runtime"]["recv"]["fixed_s"] + result["runtime"]["recv"]["per_byte_s"] > 0
    assert netns.leftover_namespaces() == []
    with ProfileDB(db, readonly=True) as store:
        assert set(store.devices()) >= {"local", "testbed:raspberry-pi-4"}
        # each profile says which cluster's slot it was measured in
        assert {r.software.get("cluster") for r in store.runs("testbed:raspberry-pi-4")} == {"edge-fleet"}
    model = profiling.testbed_cost_model(load_cluster("edge-fleet"), CostModel())
    assert "raspberry-pi-4" in model.per_device and "jetson-nano" not in model.per_device
    # measured inside: used as measured; never measured inside (the Jetson): the host's, scaled
    assert model.runtime["raspberry-pi-4"] == latest_runtime_cost("testbed:raspberry-pi-4", db)
    # ... and only in that cluster: another one gives its Pis another slice of a core and other links
    elsewhere = profiling.testbed_cost_model(load_cluster("pi-fleet"), CostModel())
    assert elsewhere.runtime["raspberry-pi-4"] != model.runtime["raspberry-pi-4"]
    cluster, host_flops = load_cluster("edge-fleet"), host_core_flops(db)
    want = cluster.node("jetson").device.peak("float32") / host_flops
    dilation = plan_layout(cluster, host_flops, os.cpu_count() or 1).dilation
    assert model.runtime["jetson-nano"] == latest_runtime_cost("local", db).slower(1 / min(dilation, want))


def test_unknown_testbed_device_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEWISE_PROFILE_DB", str(tmp_path / "p.db"))
    r = subprocess.run(EDGEWISE + ["profile", "--testbed-device", "nope"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.skipif(can_emulate() is not None, reason=str(can_emulate()))
def test_the_runtime_costs_alone_are_measured_again_inside_that_cluster_only(tmp_path):
    db = str(tmp_path / "p.db")
    cost = profiling.measure_runtime_in_testbed(load_cluster("pi-fleet"), "pi0", db)
    assert cost is not None and cost == latest_runtime_cost("testbed:raspberry-pi-4", db, "pi-fleet")
    assert latest_runtime_cost("testbed:raspberry-pi-4", db, "slow-link") is None
    assert netns.leftover_namespaces() == []
    with ProfileDB(db, readonly=True) as store:   # no ops, no microbenchmarks: only the probe's rows
        kinds = {m.kind for m in store.measurements(device="testbed:raspberry-pi-4")}
    assert kinds == {"runtime"}


@pytest.mark.skipif(can_emulate() is not None, reason=str(can_emulate()))
def test_a_plans_receiving_stages_are_measured_inside_their_devices_and_predict_its_run(tmp_path, monkeypatch):
    from edgewise.cli.plan_cmd import trace_model
    from edgewise.plan.planners import PLANNERS
    from edgewise.plan.schema import Stage
    graph, cluster = trace_model("zoo:mlp"), load_cluster("slow-link")
    even = PLANNERS["even"](graph, cluster, "throughput", None, 1)
    first, *rest = even.stages      # two stages: the first device's, and the rest on another
    other = next(n.name for n in cluster.nodes if n.name not in first.devices)
    plan = even.model_copy(update={"stages": [first, Stage(devices=[other], ops=[op for s in rest for op in s.ops])]})
    path = tmp_path / "plan.json"
    path.write_text(plan.to_json())
    db = tmp_path / "p.db"
    env = {**os.environ, "EDGEWISE_PROFILE_DB": str(db)}
    r = subprocess.run(EDGEWISE + ["profile", "--stages", str(path), "--json"], capture_output=True, text=True,
                       timeout=600, env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["stages_measured"] == 1
    assert netns.leftover_namespaces() == []
    second = plan.stages[1]
    label = f"testbed:{cluster.node(second.devices[0]).device.name}"
    with ProfileDB(db, readonly=True) as store:
        rows = [m for m in store.measurements(device=label, kind="runtime") if m.model == "zoo:mlp"]
    assert {(m.op_class, m.op_name) for m in rows} == {(c, profiling.stage_key(second.ops)) for c in ("wake", "spread")}
    monkeypatch.setenv("EDGEWISE_PROFILE_DB", str(db))
    rt = profiling.testbed_cost_model(cluster, CostModel(), "zoo:mlp").runtime_cost(cluster.node(second.devices[0]).device)
    assert list(rt.stages) == [(second.ops[0], second.ops[-1])] and rt.stages[(second.ops[0], second.ops[-1])].wake_s >= 0


def test_remeasuring_the_runtime_costs_of_an_unknown_device_is_one_error():
    with pytest.raises(EdgewiseError) as e:
        profiling.measure_runtime_in_testbed(load_cluster("slow-link"), "nope", None)
    assert len(str(e.value).splitlines()) == 1


def test_an_ops_time_is_its_median_over_every_profile_of_the_model(tmp_path, monkeypatch):
    from edgewise.hardware.profile_db import Measurement, Run
    db = tmp_path / "p.db"
    monkeypatch.setenv("EDGEWISE_PROFILE_DB", str(db))
    with ProfileDB(db) as store:
        for t in (0.002, 0.001, 0.005):     # three profiles, the latest off
            run = Run(device="testbed:raspberry-pi-4", device_kind="cpu", device_model="emulated", memory_bytes=0, host="h")
            store.record(run, [Measurement(kind="op", op_class="matmul", dtype="float32", time_s=t, model="zoo:mlp", op_name="linear"),
                               Measurement(kind="op", op_class="matmul", dtype="float32", time_s=9.0, model="zoo:m5", op_name="linear")])
    model = profiling.testbed_cost_model(load_cluster("pi-fleet"), CostModel(), "zoo:mlp")
    assert model.measured_s[("raspberry-pi-4", "linear")] == 0.002


def test_an_ops_time_comes_from_the_profiles_taken_in_that_cluster_where_there_are_any(tmp_path, monkeypatch):
    from edgewise.hardware.profile_db import Measurement, Run
    db = tmp_path / "p.db"
    monkeypatch.setenv("EDGEWISE_PROFILE_DB", str(db))
    with ProfileDB(db) as store:
        for cluster, t in (("edge-fleet", 0.004), ("edge-fleet", 0.006), ("pi-fleet", 0.001)):
            run = Run(device="testbed:raspberry-pi-4", device_kind="cpu", device_model="emulated", memory_bytes=0,
                      host="h", software={"cluster": cluster})
            store.record(run, [Measurement(kind="op", op_class="matmul", dtype="float32", time_s=t, model="zoo:mlp",
                                           op_name="linear")])

    def linear(cluster: str) -> float:
        return profiling.testbed_cost_model(load_cluster(cluster), CostModel(), "zoo:mlp").measured_s[("raspberry-pi-4", "linear")]
    assert linear("pi-fleet") == 0.001
    assert linear("edge-fleet") == 0.005
    assert linear("slow-link") == 0.004         # never profiled there: every profile's median


def test_a_steps_wake_up_cost_is_the_latest_measured_for_that_model_in_that_cluster(tmp_path, monkeypatch):
    from edgewise.hardware.profile_db import Measurement, Run
    db = tmp_path / "p.db"
    monkeypatch.setenv("EDGEWISE_PROFILE_DB", str(db))
    with ProfileDB(db) as store:
        for cluster, model, t in (("pi-fleet", "zoo:m5", 3e-4), ("pi-fleet", "zoo:m5", 2e-4),
                                  ("pi-fleet", "zoo:mlp", 9e-4), ("edge-fleet", "zoo:m5", 7e-4)):
            run = Run(device="testbed:raspberry-pi-4", device_kind="cpu", device_model="emulated", memory_bytes=0,
                      host="h", software={"cluster": cluster})
            store.record(run, [Measurement(kind="runtime", op_class="wake", dtype="float32", time_s=t, model=model),
                               Measurement(kind="runtime", op_class="alone", dtype="float32", time_s=t / 2, model=model),
                               Measurement(kind="runtime", op_class="received", dtype="float32", time_s=t / 4,
                                           model=model),
                               Measurement(kind="runtime", op_class="spread", dtype="float32", time_s=t * 3,
                                           model=model)])

    def costs(cluster: str, model: str | None) -> tuple[float, float | None, float | None, float | None]:
        rt = profiling.testbed_cost_model(load_cluster(cluster), CostModel(), model).runtime_cost(
            load_cluster(cluster).node("pi0").device)
        return rt.wake_s, rt.alone_s, rt.received_s, rt.spread_s
    assert costs("pi-fleet", "zoo:m5") == pytest.approx((2e-4, 1e-4, 5e-5, 6e-4))
    assert costs("pi-fleet", "zoo:mlp") == pytest.approx((9e-4, 4.5e-4, 2.25e-4, 2.7e-3))
    assert costs("edge-fleet", "zoo:m5") == pytest.approx((7e-4, 3.5e-4, 1.75e-4, 2.1e-3))
    assert costs("slow-link", "zoo:m5") == (0.0, None, None, None)   # another cluster's slot wakes differently: not used
    assert costs("pi-fleet", None) == (0.0, None, None, None)        # no model, no step to wake


@pytest.mark.skipif(can_emulate() is not None, reason=str(can_emulate()))
def test_a_stages_own_costs_are_kept_apart_from_the_whole_models_latest_first(tmp_path, monkeypatch):
    from edgewise.cost.runtime import StageCosts
    from edgewise.hardware.profile_db import Measurement, Run
    db = tmp_path / "p.db"
    monkeypatch.setenv("EDGEWISE_PROFILE_DB", str(db))
    key = profiling.stage_key(["conv1d_3", "linear"])

    def rows(t: float, op_name: str, classes=("wake", "received", "spread")) -> list[Measurement]:
        return [Measurement(kind="runtime", op_class=c, dtype="float32", time_s=t * (i + 1), model="zoo:m5",
                            op_name=op_name) for i, c in enumerate(classes)]
    with ProfileDB(db) as store:
        for found in (rows(1e-3, ""), rows(5e-4, key), rows(3e-4, key),
                      rows(9e-4, profiling.stage_key(["relu_1", "linear"]), classes=("wake",))):   # incomplete
            store.record(Run(device="testbed:raspberry-pi-4", device_kind="cpu", device_model="emulated",
                             memory_bytes=0, host="h", software={"cluster": "edge-fleet"}), found)
    cluster = load_cluster("edge-fleet")
    rt = profiling.testbed_cost_model(cluster, CostModel(), "zoo:m5").runtime_cost(cluster.node("pi0").device)
    assert (rt.wake_s, rt.received_s, rt.spread_s) == pytest.approx((1e-3, 2e-3, 3e-3))     # the model's, unmixed
    assert rt.stages == {("conv1d_3", "linear"): StageCosts(wake_s=3e-4, spread_s=9e-4)}
    assert rt.slower(2).stages[("conv1d_3", "linear")].spread_s == pytest.approx(1.8e-3)


def test_each_round_is_a_profile_in_a_fresh_process_and_a_failed_one_stops_them(tmp_path, monkeypatch):
    from types import SimpleNamespace
    from edgewise.testbed.layout import Slot
    started = []
    slot = Slot(node="pi0", netns="edgewise-d0", address="198.18.0.1", cpu_quota_cores=0.25, cpus=(0,), threads=1)
    monkeypatch.setattr(profiling, "_testbed_for", lambda *a: SimpleNamespace(dilation=1.0, slot=lambda node: slot))
    monkeypatch.setattr(profiling.netns, "launch_argv", lambda layout, node, cmd: cmd)
    monkeypatch.setattr(profiling.netns, "down", lambda: started.append("down"))

    def run(cmd, **kwargs):
        started.append(cmd)
        failed = len(started) > 3
        return subprocess.CompletedProcess(cmd, int(failed), stdout=json.dumps({"round": len(started)}), stderr="boom\n")
    monkeypatch.setattr(profiling.subprocess, "run", run)
    pi_fleet, db = load_cluster("pi-fleet"), str(tmp_path / "p.db")
    result = profiling.profile_in_testbed(pi_fleet, "pi0", None, True, None, db, runtime=False, rounds=3)
    assert result == {"round": 3, "runtime": None} and started[-1] == "down"
    assert all("profile" in cmd for cmd in started[:3])
    with pytest.raises(EdgewiseError, match="profiling inside 'pi0' failed: boom"):
        profiling.profile_in_testbed(pi_fleet, "pi0", None, True, None, db, runtime=False, rounds=2)
    assert started[-1] == "down"        # torn down after a failed round too
    with pytest.raises(EdgewiseError, match="at least 1"):
        profiling.profile_in_testbed(pi_fleet, "pi0", None, True, None, db, rounds=0)


def test_predictions_for_the_testbed_count_how_a_busy_fleet_slowed_the_model_there(tmp_path, monkeypatch):
    from edgewise.cli.plan_cmd import trace_model
    from edgewise.hardware.profile_db import Measurement, Run
    from edgewise.plan.planners import PLANNERS
    db = tmp_path / "p.db"
    monkeypatch.setenv("EDGEWISE_PROFILE_DB", str(db))
    monkeypatch.setattr(profiling, "host_core_flops", lambda path: 150e9)
    graph = trace_model("zoo:mlp")
    with ProfileDB(db) as store:
        run = Run(device="testbed:raspberry-pi-4", device_kind="cpu", device_model="emulated", memory_bytes=0,
                  host="h", software={"cluster": "pi-fleet"})
        store.record(run, [Measurement(kind="op", op_class="matmul", dtype="float32", time_s=1e-3, model="zoo:mlp",
                                       op_name=op.name) for op in graph.ops]
                     + [Measurement(kind="crowding", op_class=state, dtype="float32", time_s=t, model="zoo:mlp",
                                    op_name=graph.ops[0].name) for state, t in (("quiet", 0.010), ("crowded", 0.012))])
    cluster = load_cluster("pi-fleet")
    plan = PLANNERS["edgewise"](graph, cluster, "throughput", CostModel(), 1)     # four replicas, all busy
    slowed = profiling.testbed_prediction_cost(plan, graph, CostModel()).measured_s
    assert 1.15e-3 < slowed[("raspberry-pi-4", graph.ops[0].name)] <= 1.2e-3
    assert slowed[("raspberry-pi-4", graph.ops[1].name)] == 1e-3     # not measured crowded: as profiled
    # where it was not measured (another model), predictions are testbed_cost_model's
    other = plan.model_copy(update={"model": "zoo:m5"})
    assert profiling.testbed_prediction_cost(other, graph, CostModel()) == profiling.testbed_cost_model(cluster, CostModel(), "zoo:m5")
