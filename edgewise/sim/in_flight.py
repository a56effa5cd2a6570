"""Choosing a plan's bound on inputs in flight (`Plan.max_in_flight`) by simulation.

Without a bound the senders' queues fill in front of the slowest stage, and latency is that
queue's length times the slowest stage's time: long, and hard to predict, because which stage
is slowest can change from run to run when stages are balanced. The smallest bound that still
reaches the throughput of no bound keeps latency near the pipeline's own depth; by Little's
law latency is then the bound over the throughput, whatever stage is slowest.
"""
from __future__ import annotations

from edgewise.cost.roofline import CostModel
from edgewise.graph.opgraph import OpGraph
from edgewise.plan.schema import Plan
from edgewise.sim.pipeline import simulate

KEEP = 0.98          # the throughput of no bound that a bound must keep
GAIN = 0.95          # and the latency it must at least cut to, else no bound


def fit_in_flight(plan: Plan, graph: OpGraph, cost: CostModel) -> Plan:
    """`plan` with twice (and at least two more than) the smallest bound that keeps KEEP of its
    unbounded simulated throughput. The simulator's stages take the same time every input and
    its notes come straight back; a real fleet's do not, and needs the room (measured on the
    testbed: mobilenet_v2 on edge-fleet lost 10-15% of its throughput at the knee plus two).
    Too small a bound costs throughput, too large only latency. No bound where that does not
    cut the simulated latency by 1 - GAIN (short queues may be shorter already), nor for a
    one-stage plan, inside which no queue forms."""
    unbounded = plan.model_copy(update={"max_in_flight": None})
    if len(plan.stages) == 1:
        return unbounded
    seats = sum(len(s.devices) for s in plan.stages)
    inputs = 16 * seats

    def report(p: Plan):
        return simulate(p, graph, cost, inputs, warmup=4 * seats).report

    free = report(unbounded)
    for knee in range(1, 4 * seats + 1):
        if report(plan.model_copy(update={"max_in_flight": knee})).throughput_per_s >= KEEP * free.throughput_per_s:
            bounded = plan.model_copy(update={"max_in_flight": knee + max(2, knee)})
            r = report(bounded)
            keeps = r.throughput_per_s >= KEEP * free.throughput_per_s
            return bounded if keeps and r.latency_s.p50 <= GAIN * free.latency_s.p50 else unbounded
    return unbounded
