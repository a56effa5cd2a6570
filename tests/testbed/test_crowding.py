"""How a busy fleet slows an emulated device: the probe on the testbed, and what predictions do with it."""
import subprocess
import time

import pytest

from edgewise.cli.plan_cmd import trace_model
from edgewise.cost.roofline import CostModel
from edgewise.errors import EdgewiseError
from edgewise.hardware.cluster_io import load_cluster
from edgewise.plan.planners import PLANNERS
from edgewise.sim.pipeline import simulate
from edgewise.testbed import crowding, netns
from edgewise.testbed.commands import can_emulate
from edgewise.testbed.crowding import crowd_cost_model, measure_crowding
from edgewise.testbed.drive import build_testbed
from edgewise.testbed.layout import plan_layout
from edgewise.zoo.spec import saved_program

HOST_FLOPS = 150e9


def _measured(graph, cluster) -> CostModel:
    """Every op measured on every device type of `cluster`: 1 ms each, 0.5 on the Jetson."""
    kinds = {n.device.name for n in cluster.nodes}
    return CostModel(measured_s={(kind, op.name): 0.5e-3 if kind == "jetson-nano" else 1e-3
                                 for kind in kinds for op in graph.ops})


def _every_op(graph, ratio: float) -> dict[str, float]:
    return {op.name: ratio for op in graph.ops}


def test_a_device_whose_neighbours_all_compute_is_slowed_almost_by_the_whole_ratio():
    graph, cluster = trace_model("zoo:mlp"), load_cluster("pi-fleet")
    cost = _measured(graph, cluster)
    plan = PLANNERS["edgewise"](graph, cluster, "throughput", cost, 1)
    assert len(plan.stages) == 1 and len(plan.stages[0].devices) == 4     # four replicas: all busy
    crowded = crowd_cost_model(cost, plan, graph, plan_layout(cluster, HOST_FLOPS, 2), {"raspberry-pi-4": _every_op(graph, 1.2)})
    factor = crowded.measured_s[("raspberry-pi-4", graph.ops[0].name)] / 1e-3
    assert 1.15 < factor <= 1.2
    # every op of the type alike; the prediction slows with them
    assert len({t for (kind, _), t in crowded.measured_s.items() if kind == "raspberry-pi-4"}) == 1
    assert simulate(plan, graph, crowded, 64).report.throughput_per_s < simulate(plan, graph, cost, 64).report.throughput_per_s


def test_a_device_alone_in_the_run_is_not_slowed_and_types_without_a_ratio_are_left_alone():
    graph, cluster = trace_model("zoo:mlp"), load_cluster("edge-fleet")
    cost = _measured(graph, cluster)
    plan = PLANNERS["single"](graph, cluster, "throughput", cost, 1)
    assert [s.devices for s in plan.stages] == [["jetson"]]     # the Pis idle: nothing crowds it
    layout = plan_layout(cluster, HOST_FLOPS, 2)
    assert crowd_cost_model(cost, plan, graph, layout, {"jetson-nano": _every_op(graph, 1.5)}).measured_s == cost.measured_s
    split = PLANNERS["even"](graph, cluster, "throughput", cost, 1)
    first, second = graph.ops[0].name, graph.ops[1].name
    crowded = crowd_cost_model(cost, split, graph, layout, {"raspberry-pi-4": {first: 1.3}})
    assert crowded.measured_s[("jetson-nano", first)] == 0.5e-3
    assert 1.0 < crowded.measured_s[("raspberry-pi-4", first)] / 1e-3 < 1.3     # the others only partly busy
    assert crowded.measured_s[("raspberry-pi-4", second)] == 1e-3                # each op by its own ratio


def _probe_processes() -> list[str]:
    found = subprocess.run(["pgrep", "-af", "edgewise.testbed.crowding"], capture_output=True, text=True)
    return found.stdout.splitlines()


@pytest.mark.skipif(can_emulate() is not None, reason=str(can_emulate()))
def test_the_probe_measures_inside_the_testbed_and_leaves_nothing_running(monkeypatch):
    cluster = load_cluster("pi-fleet")
    layout = build_testbed(cluster)
    try:
        with saved_program("zoo:mlp") as program:
            found = measure_crowding(layout, "pi3", program, rounds=1)
        ops = {op.name for op in trace_model("zoo:mlp").ops}     # the ops the planner costs, by their names
        assert ops <= found.quiet_s.keys() and ops <= found.crowded_s.keys()
        assert min(found.quiet_s.values()) > 0 and min(found.crowded_s.values()) > 0
        assert _probe_processes() == []
        with pytest.raises(EdgewiseError, match="busy fleet") as e:    # the processes cannot load the model
            measure_crowding(layout, "pi3", "/nonexistent/model.pt2", rounds=1)
        assert "\n" not in str(e.value)
        assert _probe_processes() == []
        # a measurer that hangs: the watchdog ends the probe, one line, nothing left running
        monkeypatch.setattr(crowding, "TIMEOUT_S", 5.0)
        real_call = crowding._call
        monkeypatch.setattr(crowding, "_call", lambda entry, *args: "import time; time.sleep(600)  # edgewise.testbed.crowding"
                            if entry == "_measure" else real_call(entry, *args))
        began = time.monotonic()
        with pytest.raises(EdgewiseError, match="took over 5 s"):
            measure_crowding(layout, "pi3", "/nonexistent/model.pt2", rounds=1)
        assert time.monotonic() - began < 30
        assert _probe_processes() == []
    finally:
        netns.down()
    assert netns.leftover_namespaces() == []
