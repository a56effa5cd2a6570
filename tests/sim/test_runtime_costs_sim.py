"""The simulator charges the runtime's own costs to the devices that pay them."""
import math
import os
import statistics
import sys
from dataclasses import replace

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "plan"))
from synthetic import chain_graph, lan_cluster  # noqa: E402

from edgewise.cost.roofline import CostModel
from edgewise.cost.runtime import Linear, RuntimeCost, StageCosts
from edgewise.plan.evaluate import StageSpan, _device_loads
from edgewise.plan.planners import PLANNERS, spans_of
from edgewise.plan.profile import profile
from edgewise.sim.pipeline import simulate


def setup():
    graph, cluster = chain_graph(40, 3), lan_cluster()
    return graph, cluster, PLANNERS["even"](graph, cluster, "throughput", None, 1)


def test_free_runtime_changes_nothing_and_costs_slow_the_stream():
    graph, cluster, plan = setup()
    free = simulate(plan, graph, CostModel(), inputs=40)
    names = {n.device.name for n in cluster.nodes}
    costly = CostModel(runtime={d: RuntimeCost(input=Linear(1e-3), send=Linear(2e-3, 1e-9), recv=Linear(1e-3))
                                for d in names})
    slow = simulate(plan, graph, costly, inputs=40)
    assert slow.report.throughput_per_s < free.report.throughput_per_s
    # the figures a run reports are compute only: per-stage times stay the same
    assert slow.report.per_stage_s == pytest.approx(free.report.per_stage_s)


def test_a_stage_device_computes_as_its_message_arrives_and_pays_for_receiving_it_after():
    graph, cluster, plan = setup()
    names = {n.device.name for n in cluster.nodes}
    send, recv = 5e-3, 3e-3
    cost = CostModel(runtime={d: RuntimeCost(send=Linear(send), recv=Linear(recv)) for d in names})
    sim = simulate(plan, graph, cost, inputs=8)
    middle = [s for s in sim.timeline if s.tags.get("stage") == 1]
    assert middle and len(plan.stages) > 2
    arrived = {s.tags["input"]: s.end_s for s in sim.timeline if s.task.startswith("cut0 ")}
    for s in middle:
        k = s.tags["input"]
        assert s.end_s - s.start_s == pytest.approx(s.tags["compute_s"] + send)
        received = next(t for t in sim.timeline if t.task == f"received input{k}" and t.resource == s.resource)
        assert received.start_s == pytest.approx(s.end_s) and received.end_s - received.start_s == pytest.approx(recv)
    # nothing else holds the device when the first message is in: it computes at once
    assert middle[0].start_s == pytest.approx(arrived[middle[0].tags["input"]])
    # ... and the next input waits for the device to have taken the last one in
    assert middle[1].start_s >= middle[0].end_s + recv - 1e-12
    # latency runs from stage 0's compute to the last stage's compute, as the runtime times it
    first = min(s.start_s + s.tags["compute_from_s"] for s in sim.timeline if s.tags.get("stage") == 0)
    assert first == pytest.approx(0.0)


@pytest.mark.parametrize("planner", ["edgewise", "even"])
def test_planner_and_simulator_charge_the_runtime_alike(planner):
    graph, cluster = chain_graph(40, 3), lan_cluster()
    names = {n.device.name for n in cluster.nodes}
    cost = CostModel(runtime={d: RuntimeCost(input=Linear(2e-4, 1e-9), send=Linear(1e-3, 2e-9), recv=Linear(5e-4, 1e-9))
                              for d in names})
    plan = PLANNERS[planner](graph, cluster, "throughput", cost, 1)
    sim = simulate(plan, graph, cost, inputs=80)
    assert sim.report.throughput_per_s == pytest.approx(plan.predicted.throughput_per_s, rel=0.05)


def test_when_messages_cost_more_than_a_split_saves_the_planner_keeps_one_device():
    graph, cluster = chain_graph(40, 3), lan_cluster()
    names = {n.device.name for n in cluster.nodes}
    cheap = PLANNERS["edgewise"](graph, cluster, "throughput", CostModel(), 1)
    dear = CostModel(runtime={d: RuntimeCost(send=Linear(10.0), recv=Linear(10.0)) for d in names})
    plan = PLANNERS["edgewise"](graph, cluster, "throughput", dear, 1)
    assert len(cheap.stages) > 1 or len(cheap.stages[0].devices) > 1
    assert len(plan.stages) == 1 and len(plan.stages[0].devices) == 1



def test_a_device_that_makes_and_finishes_its_inputs_pays_the_loop_and_the_planner_agrees():
    graph, cluster = chain_graph(40, 3), lan_cluster(pis=0, nanos=1)
    plan = PLANNERS["even"](graph, cluster, "throughput", None, 1)
    assert len(plan.stages) == 1
    base = {d: RuntimeCost(input=Linear(1e-3)) for d in {n.device.name for n in cluster.nodes}}
    looped = {d: RuntimeCost(input=Linear(1e-3), loop=Linear(2e-3)) for d in base}
    free, paid = (simulate(plan, graph, CostModel(runtime=rt), inputs=40).report for rt in (base, looped))
    assert 1 / paid.throughput_per_s == pytest.approx(1 / free.throughput_per_s + 2e-3)
    # after the compute: an input's own latency does not include it
    assert paid.latency_s.p50 == pytest.approx(free.latency_s.p50)
    planned = PLANNERS["even"](graph, cluster, "throughput", CostModel(runtime=looped), 1)
    assert planned.predicted.throughput_per_s == pytest.approx(paid.throughput_per_s, rel=0.01)


def test_a_steps_wake_up_cost_is_part_of_every_stage_step_that_runs_any_op():
    graph, cluster, plan = setup()
    names = {n.device.name for n in cluster.nodes}
    wake = 2e-3
    free = simulate(plan, graph, CostModel(), inputs=8)
    woken = simulate(plan, graph, CostModel(runtime={d: RuntimeCost(wake_s=wake) for d in names}), inputs=8)
    # once per stage, not per op: a stage is one step of its device however many ops it holds
    assert woken.report.per_stage_s == pytest.approx([t + wake for t in free.report.per_stage_s])
    assert woken.report.latency_s.p50 >= free.report.latency_s.p50 + wake * len(plan.stages) - 1e-12


def test_a_message_received_costs_what_was_measured_in_the_models_stream_where_it_was():
    fitted = RuntimeCost(recv=Linear(1e-3, 1e-8))
    measured = replace(fitted, received_s=4e-3)
    assert fitted.receive(1000) == pytest.approx(1e-3 + 1e-5)
    assert measured.receive(1000) == pytest.approx(4e-3 + 1e-5)     # the fixed part; bytes still cost per byte
    assert measured.slower(2).receive(1000) == pytest.approx(2 * (4e-3 + 1e-5))
    graph, cluster, plan = setup()
    prof = profile(graph, cluster, CostModel(), 1)
    stage_of = {d: sp for sp in spans_of(plan, graph) for d in sp.devices}
    names = {n.device.name for n in cluster.nodes}
    plain, dearer = (simulate(plan, graph, CostModel(runtime={d: rt for d in names}), inputs=8)
                     for rt in (fitted, measured))
    received = [s for s in dearer.timeline if s.task.startswith("received")]
    assert received
    for s in received:        # each message into a stage, at its size
        sp = stage_of[s.resource.removeprefix("device:")]
        nbytes = prof.cut_bytes(sp.start) if sp.start else int(prof.live_bytes[0])
        assert s.end_s - s.start_s == pytest.approx(4e-3 + 1e-8 * nbytes)
    # every stage after the first takes its message in before its next step: a longer cycle
    assert 1 / dearer.report.throughput_per_s > 1 / plain.report.throughput_per_s


def test_a_device_serving_the_whole_model_alone_pays_its_measured_cost_instead_of_the_loop_and_the_wake():
    graph, cluster = chain_graph(40, 3), lan_cluster(pis=0, nanos=1)
    plan = PLANNERS["even"](graph, cluster, "throughput", None, 1)
    base = {d: RuntimeCost(input=Linear(1e-3), loop=Linear(2e-3), wake_s=4e-3) for d in {n.device.name for n in cluster.nodes}}
    alone = {d: RuntimeCost(input=Linear(1e-3), loop=Linear(2e-3), wake_s=4e-3, alone_s=5e-4) for d in base}
    woken, measured = (simulate(plan, graph, CostModel(runtime=rt), inputs=40).report for rt in (base, alone))
    # per input: the loop and the wake-up (6 ms) give way to the cost of serving alone (0.5 ms)
    assert 1 / measured.throughput_per_s == pytest.approx(1 / woken.throughput_per_s - 6e-3 + 5e-4)
    assert measured.per_stage_s[0] == pytest.approx(woken.per_stage_s[0] - 4e-3)
    planned = PLANNERS["even"](graph, cluster, "throughput", CostModel(runtime=alone), 1)
    assert planned.predicted.throughput_per_s == pytest.approx(measured.throughput_per_s, rel=0.01)


def test_replicas_of_the_whole_model_that_receive_their_inputs_are_still_woken():
    graph, cluster = chain_graph(40, 3), lan_cluster(pis=0, nanos=2)
    first, other = (n.name for n in cluster.nodes)
    spans = [StageSpan(0, len(graph.ops), (first, other))]

    def loads(**costs) -> dict[str, float]:
        rt = CostModel(runtime={n.device.name: RuntimeCost(**costs) for n in cluster.nodes})
        return _device_loads(profile(graph, cluster, rt, 1), spans)
    plain, woken = loads(alone_s=1e-4), loads(alone_s=1e-4, wake_s=3e-3)
    assert woken[first] == pytest.approx(plain[first])              # makes its own inputs: not woken
    assert woken[other] == pytest.approx(plain[other] + 3e-3 / 2)   # receives its half of them


def test_a_receiver_asks_for_a_message_as_it_starts_the_step_before_it():
    # The worker posts the receive for input k+1 once it has input k in hand and has finished
    # the step before, taking that step's message in included: only then can k+1 move.
    graph, cluster = chain_graph(12, 5, skips=False), lan_cluster(pis=2, nanos=0, bw=1e9)
    plan = PLANNERS["even"](graph, cluster, "throughput", None, 1)
    recv = 20.0      # receiving dearer than computing (seconds a step): the receiver is the bottleneck
    cost = CostModel(runtime={n.device.name: RuntimeCost(recv=Linear(recv)) for n in cluster.nodes})
    sim = simulate(plan, graph, cost, inputs=12)
    receiver = plan.stages[1].devices[0]
    wires = {s.tags["input"]: s for s in sim.timeline if s.task.startswith("cut0 ")}
    taken = {s.tags["input"]: s for s in sim.timeline if s.task.startswith("received ") and s.resource == f"device:{receiver}"}
    assert len(wires) == len(taken) == 12
    for k in range(2, 12):
        assert wires[k].start_s >= max(taken[k - 2].end_s, wires[k - 1].end_s) - 1e-12
    # in the steady state that is what holds each message back
    assert wires[10].start_s == pytest.approx(taken[8].end_s)


def _step_times(sim) -> dict[str, list[float]]:
    steps: dict[str, list[float]] = {}
    for s in sim.timeline:
        if s.tags.get("kind") == "compute":
            steps.setdefault(s.tags["device"], []).append(s.tags["compute_s"])
    return steps


def test_without_a_measured_spread_every_step_takes_its_mean():
    graph, cluster, plan = setup()
    names = {n.device.name for n in cluster.nodes}
    sim = simulate(plan, graph, CostModel(runtime={d: RuntimeCost(spread_s=None) for d in names}), inputs=20)
    for times in _step_times(sim).values():
        assert max(times) == pytest.approx(min(times))


def test_step_times_spread_as_measured_for_the_whole_model_the_same_way_every_time():
    # The spread was measured on the whole model's step; a stage's share of it varies as the
    # sum of that many independent periods would, its variance in proportion to its time.
    graph, cluster, plan = setup()
    names = {n.device.name for n in cluster.nodes}
    even = simulate(plan, graph, CostModel(), inputs=600)
    prof = profile(graph, cluster, CostModel(), 1)
    spread = {d: 0.08 * prof.stage_time_s(prof.class_of[n.name], 0, prof.n)
              for n in cluster.nodes for d in [n.device.name]}
    cost = CostModel(runtime={d: RuntimeCost(spread_s=spread[d]) for d in names})
    uneven, again = simulate(plan, graph, cost, inputs=600), simulate(plan, graph, cost, inputs=600)
    assert [(s.task, s.start_s, s.end_s) for s in uneven.timeline] == [(s.task, s.start_s, s.end_s) for s in again.timeline]
    for n in cluster.nodes:
        mean = _step_times(even)[n.name][0]
        times = _step_times(uneven)[n.name]
        whole = prof.stage_time_s(prof.class_of[n.name], 0, prof.n)
        assert statistics.mean(times) == pytest.approx(mean, rel=0.02)
        assert statistics.stdev(times) == pytest.approx(spread[n.device.name] * math.sqrt(mean / whole), rel=0.15)


def _stage_measured(plan, graph, stage: int, costs: StageCosts, model: RuntimeCost) -> CostModel:
    """Every device costs `model`'s figures, and the devices' class `costs` on `stage` itself."""
    sp = spans_of(plan, graph)[stage]
    key = (graph.ops[sp.start].name, graph.ops[sp.end - 1].name)
    names = {n.device.name for n in plan.cluster.nodes}
    return CostModel(runtime={d: replace(model, stages={key: costs}) for d in names})


def test_a_stages_own_wake_up_cost_replaces_the_whole_models_for_that_stage_only():
    graph, cluster, plan = setup()
    model = RuntimeCost(recv=Linear(1e-3, 1e-8), wake_s=4e-3, received_s=6e-3)
    own = StageCosts(wake_s=1e-3, spread_s=0.0)
    names = {n.device.name for n in cluster.nodes}
    whole = simulate(plan, graph, CostModel(runtime={d: model for d in names}), inputs=8)
    staged = simulate(plan, graph, _stage_measured(plan, graph, 1, own, model), inputs=8)
    spans = spans_of(plan, graph)
    assert len(spans) > 2
    # stage 1 is woken at its own cost, the others at the whole model's
    assert staged.report.per_stage_s[1] == pytest.approx(whole.report.per_stage_s[1] - 3e-3)
    assert [t for i, t in enumerate(staged.report.per_stage_s) if i != 1] == \
        pytest.approx([t for i, t in enumerate(whole.report.per_stage_s) if i != 1])
    prof = profile(graph, cluster, _stage_measured(plan, graph, 1, own, model), 1)
    # a message taken in costs the model's figure everywhere
    for s in staged.timeline:
        if s.task.startswith("received"):
            sp = next(sp for sp in spans if s.resource.removeprefix("device:") in sp.devices)
            assert s.end_s - s.start_s == pytest.approx(6e-3 + 1e-8 * prof.cut_bytes(sp.start))
    # the planner's estimate charges the same
    k = prof.class_of[spans[1].devices[0]]
    assert prof.device_time_s(k, spans[1].start, spans[1].end) == pytest.approx(
        6e-3 + 1e-8 * prof.cut_bytes(spans[1].start) + prof.stage_time_s(k, spans[1].start, spans[1].end, woken=False)
        + 1e-3 + model.send(prof.cut_bytes(spans[1].end)))


def test_a_spread_measured_on_the_stage_is_that_stages_own():
    graph, cluster, plan = setup()
    even = simulate(plan, graph, CostModel(), inputs=600)
    mean = _step_times(even)[spans_of(plan, graph)[1].devices[0]][0]
    own = StageCosts(wake_s=0.0, spread_s=0.1 * mean)
    uneven = simulate(plan, graph, _stage_measured(plan, graph, 1, own, RuntimeCost()), inputs=600)
    for i, sp in enumerate(spans_of(plan, graph)):
        times = _step_times(uneven)[sp.devices[0]]
        if i == 1:
            assert statistics.mean(times) == pytest.approx(mean, rel=0.02)
            assert statistics.stdev(times) == pytest.approx(0.1 * mean, rel=0.15)
        else:
            assert max(times) == pytest.approx(min(times))
