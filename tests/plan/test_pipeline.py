"""The edgewise planner is optimal on instances small enough to brute-force, and beats the baselines."""
import itertools
import os
import math

import pytest
from hypothesis import given, settings, strategies as st

from edgewise.errors import EdgewiseError
from edgewise.hardware.cluster import Cluster, Device, Link, Medium, Node
from edgewise.plan.evaluate import StageSpan, evaluate, objective_value
from edgewise.plan.planners import PLANNERS, edgewise_planner, even_planner, single_planner, spans_of
from edgewise.plan.profile import profile
from edgewise.cost.roofline import CostModel

import sys
sys.path.insert(0, os.path.dirname(__file__))
from synthetic import NANO, PI, chain_graph, lan_cluster, wifi_cluster


def brute_force(prof, objective):
    """Best objective over every contiguous cut x every ordered choice of disjoint device groups."""
    names = [nd.name for nd in prof.cluster.nodes]
    best = math.inf
    for m in range(1, min(len(names), prof.n) + 1):
        for cuts in itertools.combinations(range(1, prof.n), m - 1):
            bounds = (0, *cuts, prof.n)
            for labels in itertools.product(range(-1, m), repeat=len(names)):
                groups = [tuple(d for d, lab in zip(names, labels) if lab == i) for i in range(m)]
                if any(not g for g in groups):
                    continue
                spans = [StageSpan(bounds[i], bounds[i + 1], g) for i, g in enumerate(groups)]
                best = min(best, objective_value(evaluate(prof, spans), objective))
    return best


def small_cluster(kind, pis, nanos, bw, pi_mem):
    pi = PI.model_copy(update={"memory_bytes": pi_mem})
    nodes = [Node(name=f"pi{i}", device=pi) for i in range(pis)] + [Node(name=f"nano{i}", device=NANO) for i in range(nanos)]
    if kind == "wifi":
        return Cluster(name="c", nodes=nodes, media=[Medium(name="air", members=[n.name for n in nodes],
                                                            bandwidth_bytes_per_s=bw, latency_s=1e-3)])
    return Cluster(name="c", nodes=nodes, links=[Link(a=a.name, b=b.name, bandwidth_bytes_per_s=bw, latency_s=1e-3)
                                                  for i, a in enumerate(nodes) for b in nodes[i + 1:]])


# derandomized so that CI is repeatable; a counterexample a random run found is kept below
@settings(max_examples=int(os.environ.get("EW_EXAMPLES", 40)), deadline=None, derandomize=True)
@given(n=st.integers(1, 6), seed=st.integers(0, 10**6), kind=st.sampled_from(["wifi", "lan"]),
       pis=st.integers(1, 3), nanos=st.integers(0, 1), bw=st.sampled_from([1e5, 1e6, 1e7, 1e9]),
       pi_mem=st.sampled_from([3 * 10**6, 10**7, 2 << 30]), objective=st.sampled_from(["throughput", "latency"]))
def test_planner_matches_brute_force(n, seed, kind, pis, nanos, bw, pi_mem, objective):
    graph = chain_graph(n, seed)
    cluster = small_cluster(kind, pis, nanos, bw, pi_mem)
    prof = profile(graph, cluster, CostModel())
    best = brute_force(prof, objective)
    if not math.isfinite(best):
        with pytest.raises(EdgewiseError, match="does not fit"):
            edgewise_planner(graph, cluster, objective)
        return
    plan = edgewise_planner(graph, cluster, objective)
    got = objective_value(evaluate(prof, spans_of(plan, graph)), objective)
    assert got <= best * (1 + 2e-3)   # the period bisection stops within 0.1%


def test_planner_matches_brute_force_on_the_counterexample_a_random_run_found():
    # three Pis on a 100 kB/s LAN: the pass once checked a private link's load per link, not per
    # sender thread, so it took a plan over the bound for one under it and the bisection gave up
    # at two replicas (period 0.118 s) where three give 0.082 s
    test_planner_matches_brute_force.hypothesis.inner_test(n=2, seed=14875, kind="lan", pis=3, nanos=0, bw=1e5,
                                                          pi_mem=10**7, objective="throughput")


@pytest.mark.parametrize("cluster", [wifi_cluster(), lan_cluster(), wifi_cluster(6, 0)], ids=["wifi", "lan", "pis"])
def test_edgewise_at_least_as_fast_as_baselines(cluster):
    graph = chain_graph(300, 3)
    ours = edgewise_planner(graph, cluster).predicted.throughput_per_s
    assert ours >= even_planner(graph, cluster).predicted.throughput_per_s
    assert ours >= single_planner(graph, cluster).predicted.throughput_per_s


def test_energy_plan_spends_no_more_than_the_throughput_plan():
    graph, cluster = chain_graph(100, 5), wifi_cluster()
    energy = edgewise_planner(graph, cluster, "energy").predicted.energy_j_per_inference
    assert energy <= edgewise_planner(graph, cluster, "throughput").predicted.energy_j_per_inference
    assert energy <= single_planner(graph, cluster).predicted.energy_j_per_inference


def test_every_planner_covers_every_op_once_in_order():
    graph, cluster = chain_graph(40, 7), wifi_cluster()
    for name, planner in PLANNERS.items():
        plan = planner(graph, cluster, "throughput", CostModel(), 2)
        assert [o for s in plan.stages for o in s.ops] == [o.name for o in graph.ops], name
        assert plan.planner == name and plan.batch == 2 and plan.to_json()


def test_cut_carries_skip_connections():
    # op2 reads op0: a cut after op1 must carry op1's and op0's outputs
    graph = chain_graph(4, 0, skips=False)
    ops = list(graph.ops)
    ops[2] = ops[2].model_copy(update={"inputs": ("op1", "op0")})
    graph = graph.model_copy(update={"ops": tuple(ops)})
    prof = profile(graph, wifi_cluster(), CostModel())
    assert prof.cut_bytes(2) == ops[0].output_bytes + ops[1].output_bytes
    assert prof.cut_bytes(3) == ops[2].output_bytes


def test_nothing_fits_names_need_and_largest_device():
    tiny = Device(name="mcu", peak_flops_per_s={"float32": 1e9}, memory_bytes=1000, mem_bandwidth_bytes_per_s=1e8)
    cluster = Cluster(name="mcus", nodes=[Node(name="m0", device=tiny), Node(name="m1", device=tiny)],
                      media=[Medium(name="air", members=["m0", "m1"], bandwidth_bytes_per_s=1e5)])
    with pytest.raises(EdgewiseError, match=r"needs .* GiB .* largest device \(m0\) has 0.00 GiB"):
        edgewise_planner(chain_graph(5, 1), cluster)


def test_plan_for_another_graph_is_refused():
    plan = even_planner(chain_graph(10, 1), wifi_cluster())
    with pytest.raises(EdgewiseError, match="another model"):
        spans_of(plan, chain_graph(10, 1, name="x").model_copy(
            update={"ops": tuple(o.model_copy(update={"name": "z" + o.name}) for o in chain_graph(10, 1).ops)}))
