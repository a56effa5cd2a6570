"""Every planner has one signature: (graph, cluster, objective, cost, batch) -> Plan.

- `edgewise`: the pipeline DP (plan/pipeline.py), best for the objective.
- `even`:     what a user gets by hand or from torch.distributed.pipelining: the same number of
              layers on every device, devices in cluster order.
- `single`:   the whole model on the one device that runs it fastest.
"""
from __future__ import annotations

from typing import Callable

from edgewise.cost.roofline import CostModel
from edgewise.errors import EdgewiseError
from edgewise.graph.opgraph import OpGraph
from edgewise.hardware.cluster import Cluster
from edgewise.plan.evaluate import PipelineCost, StageSpan, evaluate
from edgewise.plan.pipeline import gib, plan_pipeline
from edgewise.plan.profile import GraphProfile, profile
from edgewise.plan.report import LatencyStats, Report
from edgewise.plan.schema import Objective, Plan, Stage

Planner = Callable[[OpGraph, Cluster, Objective, CostModel, int], Plan]


def edgewise_planner(graph: OpGraph, cluster: Cluster, objective: Objective = "throughput",
                     cost: CostModel | None = None, batch: int = 1) -> Plan:
    prof = _profile(graph, cluster, cost, batch)
    return to_plan(prof, plan_pipeline(prof, objective), objective, "edgewise")


def even_planner(graph: OpGraph, cluster: Cluster, objective: Objective = "throughput",
                 cost: CostModel | None = None, batch: int = 1) -> Plan:
    prof = _profile(graph, cluster, cost, batch)
    layers = _layer_starts(graph)
    devices = [nd.name for nd in cluster.nodes][: len(layers)]
    # device i takes layers [i*L/D, (i+1)*L/D): the split torch.distributed.pipelining makes by count
    bounds = [layers[i * len(layers) // len(devices)] for i in range(len(devices))] + [prof.n]
    spans = [StageSpan(bounds[i], bounds[i + 1], (d,)) for i, d in enumerate(devices)]
    return to_plan(prof, _check_fits(prof, spans, "even"), objective, "even")


def single_planner(graph: OpGraph, cluster: Cluster, objective: Objective = "throughput",
                   cost: CostModel | None = None, batch: int = 1) -> Plan:
    prof = _profile(graph, cluster, cost, batch)
    fastest = min(cluster.nodes, key=lambda nd: prof.stage_time_s(prof.class_of[nd.name], 0, prof.n))
    spans = [StageSpan(0, prof.n, (fastest.name,))]
    return to_plan(prof, _check_fits(prof, spans, "single"), objective, "single")


PLANNERS: dict[str, Planner] = {"edgewise": edgewise_planner, "even": even_planner, "single": single_planner}


def to_plan(prof: GraphProfile, spans: list[StageSpan], objective: Objective, planner: str) -> Plan:
    """The Plan JSON for `spans`, with the planner's own prediction of its figures."""
    ops = prof.graph.ops
    c = evaluate(prof, spans)
    return Plan(model=prof.graph.model, level=prof.graph.level, cluster=prof.cluster, objective=objective,
                batch=prof.batch, planner=planner,
                stages=[Stage(devices=list(s.devices), ops=[o.name for o in ops[s.start:s.end]]) for s in spans],
                predicted=predicted_report(c))


def predicted_report(c: PipelineCost) -> Report:
    return Report(source="plan", inputs=0, throughput_per_s=c.throughput_per_s,
                  latency_s=LatencyStats(p50=c.latency_s, p99=c.latency_s), per_stage_s=list(c.stage_s),
                  bytes_sent=c.bytes_sent, peak_memory_bytes=c.memory_bytes, energy_j_per_inference=c.energy_j)


def spans_of(plan: Plan, graph: OpGraph) -> list[StageSpan]:
    """A plan's stages as ranges of `graph`'s topological order; one-line error when they do not match."""
    spans, at = [], 0
    for i, st in enumerate(plan.stages):
        for j, name in enumerate(st.ops):
            traced = graph.ops[at + j].name if at + j < len(graph.ops) else None
            if name != traced:
                raise EdgewiseError(f"plan stage {i}: op {name!r} where the traced graph of {plan.model} has "
                                    f"{traced!r}; the plan was made for another model or version, re-run `edgewise plan`")
        spans.append(StageSpan(at, at + len(st.ops), tuple(st.devices)))
        at += len(st.ops)
    if at != len(graph.ops):
        raise EdgewiseError(f"plan covers {at} of the {len(graph.ops)} ops of {plan.model}; re-run `edgewise plan`")
    return spans


def _profile(graph: OpGraph, cluster: Cluster, cost: CostModel | None, batch: int) -> GraphProfile:
    if not graph.ops:
        raise EdgewiseError(f"model {graph.model}: the traced graph has no ops to place")
    return profile(graph, cluster, cost or CostModel(), batch)


def _layer_starts(graph: OpGraph) -> list[int]:
    """Where each layer begins: each op at module level, each change of owning module at op level."""
    if graph.level == "module" or not any(o.layer for o in graph.ops):
        return list(range(len(graph.ops)))
    return [i for i, o in enumerate(graph.ops) if i == 0 or o.layer != graph.ops[i - 1].layer]


def _check_fits(prof: GraphProfile, spans: list[StageSpan], planner: str) -> list[StageSpan]:
    for s in spans:
        for d in s.devices:
            need, has = prof.stage_memory_bytes(s.start, s.end), prof.cluster.node(d).device.memory_bytes
            if need > has:
                raise EdgewiseError(f"{planner} plan: stage on {d} needs {gib(need)}, the device has {gib(has)}")
    return spans
