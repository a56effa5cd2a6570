"""A plan serving a stream of inputs, played out on the event core.

Each stage's replicas take inputs in turn (input k on replica k mod r), like the runtime. A
device computes one input at a time; sending a cut occupies its channel (a private link's
direction, or the whole shared medium, which every transfer on it queues for) for bytes /
bandwidth and reaches the receiver a propagation latency later. Inputs arrive on stage 0's
first device, which forwards the other replicas' inputs. Inputs in flight are bounded (a few per
device, plus what the links' latency holds), so queues stay bounded as in a real pipeline.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from edgewise.cost.roofline import CostModel
from edgewise.errors import EdgewiseError
from edgewise.graph.opgraph import OpGraph
from edgewise.plan.evaluate import evaluate
from edgewise.plan.planners import spans_of
from edgewise.plan.profile import GraphProfile, profile
from edgewise.plan.report import Report, stream_metrics
from edgewise.plan.schema import Plan
from edgewise.sim.core import Environment, Span, Task


@dataclass
class Simulation:
    report: Report
    timeline: list[Span]


def simulate(plan: Plan, graph: OpGraph, cost: CostModel | None = None, inputs: int = 32,
             warmup: int | None = None) -> Simulation:
    """Predict `plan`'s figures for a stream of `inputs` inputs (the first `warmup` fill the pipeline)."""
    spans = spans_of(plan, graph)
    prof = profile(graph, plan.cluster, cost or CostModel(), plan.batch)
    env = Environment()
    seats = sum(len(s.devices) for s in spans)
    # inputs in flight at once: enough to keep every device and every link's latency busy, few
    # enough that queues stay bounded as in a real pipeline
    steady = evaluate(prof, spans)
    window = 2 * seats + (math.ceil(steady.latency_s / steady.period_s) if steady.feasible and steady.period_s > 0 else 0)
    last_compute: list[Task] = []
    sent_bytes = 0
    for k in range(inputs):
        prev: Task | None = None
        for i, span in enumerate(spans):
            dev = span.devices[k % len(span.devices)]
            deps = [] if prev is None else [prev]
            if i == 0:
                if k >= window:
                    deps.append(last_compute[k - window])
                if dev != span.devices[0]:
                    prev = _send(env, prof, span.devices[0], dev, int(prof.live_bytes[0]), deps, k, "input")
                    sent_bytes += int(prof.live_bytes[0])
                    deps = [prev]
            k_class = prof.class_of[dev]
            compute = env.task(f"stage{i} input{k}", env.resource(f"device:{dev}"),
                               prof.stage_time_s(k_class, span.start, span.end), deps,
                               input=k, stage=i, device=dev, kind="compute")
            prev = compute
            if i + 1 < len(spans):
                nxt = spans[i + 1].devices[k % len(spans[i + 1].devices)]
                nbytes = prof.cut_bytes(span.end)
                if nbytes:
                    prev = _send(env, prof, dev, nxt, nbytes, [compute], k, f"cut{i}")
                    sent_bytes += nbytes
        last_compute.append(prev)
    timeline = env.run()
    return Simulation(_report(plan, prof, spans, timeline, inputs, seats if warmup is None else warmup,
                              sent_bytes), timeline)


def _send(env: Environment, prof: GraphProfile, a: str, b: str, nbytes: int, deps: list[Task], k: int,
          what: str) -> Task:
    ch = prof.cluster.channel(a, b)
    if ch is None:
        raise EdgewiseError(f"plan: devices {a} and {b} follow each other but no link or medium of cluster "
                            f"{prof.cluster.name} joins them")
    key = ch.name if ch.shared else f"{ch.name}:{a}->{b}"
    return env.task(f"{what} input{k} {a}->{b}", env.resource(f"channel:{key}"), nbytes / ch.bandwidth_bytes_per_s,
                    deps, lag_s=ch.latency_s, input=k, kind="transfer", bytes=nbytes)


def _report(plan: Plan, prof: GraphProfile, spans, timeline: list[Span], inputs: int, warmup: int,
            sent_bytes: int) -> Report:
    last = len(spans) - 1
    begin = {s.tags["input"]: s.start_s for s in timeline if s.tags.get("stage") == 0}
    end = {s.tags["input"]: s.end_s for s in timeline if s.tags.get("stage") == last}
    ks = sorted(end)
    throughput, latency, window = stream_metrics([begin[k] for k in ks], [end[k] for k in ks], warmup)
    measured = set(ks[min(warmup, len(ks) - 1):])
    compute = [s for s in timeline if s.tags.get("kind") == "compute" and s.tags["input"] in measured]
    per_stage = [statistics.median(s.end_s - s.start_s for s in compute if s.tags["stage"] == i)
                 for i in range(len(spans))]
    devices = [d for sp in spans for d in sp.devices]
    busy = {d: sum(s.end_s - s.start_s for s in compute if s.tags["device"] == d) for d in devices}
    bubble = max(0.0, 1.0 - sum(busy.values()) / (len(devices) * window)) if window > 0 else 0.0
    energy = None
    if window > 0:
        joules = sum(plan.cluster.node(d).device.busy_power_w * b
                     + plan.cluster.node(d).device.idle_power_w * max(0.0, window - b) for d, b in busy.items())
        energy = joules / len(measured)
    return Report(source="simulate", inputs=len(measured), throughput_per_s=throughput, latency_s=latency,
                  per_stage_s=per_stage, bubble_fraction=bubble, bytes_sent=round(sent_bytes / inputs),
                  peak_memory_bytes={d: prof.stage_memory_bytes(sp.start, sp.end) for sp in spans for d in sp.devices},
                  energy_j_per_inference=energy)
