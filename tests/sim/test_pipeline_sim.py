"""Simulating a plan: the steady state matches the planner's cost model; the shared medium contends."""
import json
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "plan"))
from synthetic import chain_graph, lan_cluster, wifi_cluster  # noqa: E402

from edgewise.errors import EdgewiseError
from edgewise.plan.planners import PLANNERS
from edgewise.sim.export import chrome_trace, gantt_png
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
    trace = json.loads(chrome_trace(sim.timeline))
    assert {e["ph"] for e in trace["traceEvents"]} == {"M", "X"}
    assert gantt_png(sim.timeline, "t")[:8] == b"\x89PNG\r\n\x1a\n"


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