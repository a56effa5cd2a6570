"""Simulating a plan: the steady state matches the planner's cost model; the shared medium contends."""
import json
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "plan"))
from synthetic import chain_graph, lan_cluster, wifi_cluster  # noqa: E402

from edgewise.errors import EdgewiseError
from edgewise.plan.planners import PLANNERS
from edgewise.sim.export import _window, chrome_trace, gantt_png
from edgewise.sim.pipeline import simulate


@pytest.mark.parametrize("planner", sorted(PLANNERS))
@pytest.mark.parametrize("cluster", [wifi_cluster(), lan_cluster()], ids=["wifi", "lan"])
def test_simulated_throughput_matches_plan_prediction(planner, cluster):
    graph = chain_graph(60, 2)
    plan = PLANNERS[planner](graph, cluster, "throughput", None, 1)
    sim = simulate(plan, graph, inputs=60)
    # the plan's figure is a steady-state bound; played out, the runtime's back-pressure (a message
    # waits for its receiver to ask for it) may cost a little of it, never add to it
    assert plan.predicted.throughput_per_s * 0.9 <= sim.report.throughput_per_s
    assert sim.report.throughput_per_s <= plan.predicted.throughput_per_s * 1.001
    assert sim.report.latency_s.p50 >= plan.predicted.latency_s.p50 * (1 - 1e-9)
    assert sim.report.bytes_sent == pytest.approx(plan.predicted.bytes_sent, rel=0.02, abs=1)


def test_shared_medium_never_carries_two_transfers_at_once():
    graph, cluster = chain_graph(60, 2), wifi_cluster(bw=1e5)
    sim = simulate(PLANNERS["even"](graph, cluster, "throughput", None, 1), graph, inputs=20)
    air = sorted((s.start_s, s.end_s) for s in sim.timeline if s.resource == "channel:wifi")
    assert len(air) > 20 and all(b[0] >= a[1] - 1e-12 for a, b in zip(air, air[1:]))


def test_trace_and_gantt_are_written_for_a_person():
    graph, cluster = chain_graph(30, 2), wifi_cluster()
    sim = simulate(PLANNERS["edgewise"](graph, cluster, "throughput", None, 1), graph, inputs=8)
    trace = json.loads(chrome_trace([("t", sim.timeline)]))
    assert {e["ph"] for e in trace["traceEvents"]} == {"M", "X"}
    assert gantt_png([("t", sim.timeline)])[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_gantt_window_keeps_only_its_inputs_and_starts_at_zero():
    graph, cluster = chain_graph(30, 2), wifi_cluster()
    sim = simulate(PLANNERS["edgewise"](graph, cluster, "throughput", None, 1), graph, inputs=12)
    kept = _window(sim.timeline, range(4, 7))
    assert {s.tags["input"] for s in kept} == {4, 5, 6}
    assert min(s.start_s for s in kept) == 0.0
    assert len(gantt_png([("a", sim.timeline), ("b", sim.timeline)], range(4, 7))) > 1000


def test_plan_for_other_ops_is_refused_before_simulating():
    plan = PLANNERS["even"](chain_graph(20, 2), wifi_cluster(), "throughput", None, 1)
    with pytest.raises(EdgewiseError, match="covers"):
        simulate(plan, chain_graph(25, 2))


def test_emulated_link_latency_holds_the_senders_places():
    # stages of ~15 ms on either side of a 200 ms hop. The runtime waits a link's emulated latency
    # out on its sender thread, so at most SENDS_IN_FLIGHT messages travel per latency: the
    # simulator must predict that throttling, not the steady-state bound that ignores it.
    from edgewise.sim.pipeline import SENDS_IN_FLIGHT
    base = lan_cluster(0, 2, bw=1e9)
    cluster = base.model_copy(update={"links": [l.model_copy(update={"latency_s": 0.2}) for l in base.links]})
    graph = chain_graph(6, 4, skips=False)
    plan = PLANNERS["even"](graph, cluster, "throughput", None, 1)
    assert len(plan.stages) == 2 and plan.predicted.throughput_per_s > SENDS_IN_FLIGHT / 0.2
    sim = simulate(plan, graph, inputs=200)
    assert sim.report.throughput_per_s == pytest.approx(SENDS_IN_FLIGHT / 0.2, rel=0.05)


def _in_flight_spans(sim):
    first = {s.tags["input"]: s.start_s for s in sim.timeline if s.tags.get("stage") == 0}
    last_stage = max(s.tags["stage"] for s in sim.timeline if "stage" in s.tags)
    out = {s.tags["input"]: s.end_s for s in sim.timeline if s.tags.get("stage") == last_stage}
    return first, out


@pytest.mark.parametrize("bound", [1, 2, 5])
def test_an_in_flight_bound_holds_inputs_until_one_is_out(bound):
    graph, cluster = chain_graph(40, 3), lan_cluster()
    plan = PLANNERS["even"](graph, cluster, "throughput", None, 1).model_copy(update={"max_in_flight": bound})
    first, out = _in_flight_spans(simulate(plan, graph, inputs=40))
    for k in range(bound, 40):
        assert first[k] >= out[k - bound] - 1e-12
    # without the bound the stages overlap: the check above could fail
    first, out = _in_flight_spans(simulate(plan.model_copy(update={"max_in_flight": None}), graph, inputs=40))
    assert any(first[k] < out[k - 1] for k in range(1, 40))


def test_the_fitted_bound_cuts_latency_and_keeps_throughput():
    from edgewise.sim.in_flight import KEEP, fit_in_flight
    # a fast first stage feeding a slow second: without a bound, a queue fills in front of it
    graph, cluster = chain_graph(40, 3, skips=False), lan_cluster(pis=2, nanos=0, bw=1e9)
    plan = PLANNERS["even"](graph, cluster, "throughput", None, 1)
    slow = plan.model_copy(update={"stages": [plan.stages[0].model_copy(update={"ops": plan.stages[0].ops[:4]}),
                                              plan.stages[1].model_copy(update={"ops": plan.stages[0].ops[4:] + plan.stages[1].ops})]})
    fitted = fit_in_flight(slow, graph, None)
    assert fitted.max_in_flight is not None
    free, bounded = simulate(slow, graph, inputs=64).report, simulate(fitted, graph, inputs=64).report
    assert bounded.throughput_per_s >= KEEP * free.throughput_per_s
    assert bounded.latency_s.p50 < 0.95 * free.latency_s.p50


def test_a_one_stage_plan_gets_no_bound():
    from edgewise.sim.in_flight import fit_in_flight
    graph, cluster = chain_graph(10, 3), lan_cluster(pis=1, nanos=0)
    plan = PLANNERS["single"](graph, cluster, "throughput", None, 1)
    assert fit_in_flight(plan.model_copy(update={"max_in_flight": 3}), graph, None).max_in_flight is None


def test_a_sender_sends_in_order_so_a_message_waiting_for_its_receiver_holds_back_the_rest():
    # The runtime sends on one thread, in order, and a send waits for its receiver to ask. The
    # first device forwards inputs to two replicas and sends its own stage's cut to a slow last
    # stage: the forwards queue behind that cut (the measured timeline of m5 on pi-fleet showed it).
    graph, cluster = chain_graph(12, 5, skips=False), lan_cluster(pis=4, nanos=0, bw=1e8)
    plan = PLANNERS["even"](graph, cluster, "throughput", None, 1)
    ops = [op.name for op in graph.ops]
    plan = plan.model_copy(update={"stages": [plan.stages[0].model_copy(update={"devices": ["pi0", "pi1", "pi2"], "ops": ops[:2]}),
                                              plan.stages[1].model_copy(update={"devices": ["pi3"], "ops": ops[2:]})]})
    sim = simulate(plan, graph, inputs=30)
    sends = sorted((s for s in sim.timeline if s.resource == "channel:pi0:out"), key=lambda s: s.start_s)
    assert len(sends) == 30      # two forwards and a cut for every three inputs
    assert [s.tags["input"] for s in sends] == list(range(30))
