"""A plan serving a stream of inputs, played out on the event core.

Each stage's replicas take inputs in turn (input k on replica k mod r), like the runtime. A
device does one thing at a time; a stage's task on it covers receiving its message, computing
and sending the result on (and on the first device making the input), each for what the cost
model says it costs there (the runtime's own costs, cost/runtime.py, where they were measured;
the first device also makes and forwards the inputs of stage 0's other replicas). Sending a
cut also occupies its channel (a private link's direction, or the whole shared medium, which every transfer on it queues for) for bytes /
bandwidth and reaches the receiver a propagation latency later. Inputs arrive on stage 0's
first device, which forwards the other replicas' inputs. Inputs in flight are bounded (a few per
device, plus what the links' latency holds), so queues stay bounded as in a real pipeline.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from edgewise.cost.roofline import CostModel
from edgewise.cost.runtime import RuntimeCost
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
    cost = cost or CostModel()
    prof = profile(graph, plan.cluster, cost, plan.batch)
    env = Environment()
    seats = sum(len(s.devices) for s in spans)
    # inputs in flight at once: enough to keep every device and every link's latency busy, few
    # enough that queues stay bounded as in a real pipeline
    steady = evaluate(prof, spans)
    window = 2 * seats + (math.ceil(steady.latency_s / steady.period_s) if steady.feasible and steady.period_s > 0 else 0)
    source = spans[0].devices[0]
    input_bytes = int(prof.live_bytes[0])
    runtime = {d: cost.runtime_cost(plan.cluster.node(d).device) for sp in spans for d in sp.devices}
    last_compute: list[Task] = []
    sent_bytes = 0
    for k in range(inputs):
        prev = [last_compute[k - window]] if k >= window else []
        cpu_before = runtime[source].input(input_bytes)     # the first device makes every input
        for i, span in enumerate(spans):
            dev = span.devices[k % len(span.devices)]
            if i == 0 and dev != source:
                forward = env.task(f"forward input{k}", env.resource(f"device:{source}"),
                                   cpu_before + runtime[source].send(input_bytes), prev, input=k, kind="runtime")
                prev = [_wire(env, prof, source, dev, input_bytes, forward, k, "input")]
                sent_bytes += input_bytes
                cpu_before = runtime[dev].recv(input_bytes)
            nxt = spans[i + 1].devices[k % len(spans[i + 1].devices)] if i + 1 < len(spans) else None
            out_bytes = prof.cut_bytes(span.end) if nxt else 0
            compute_s = prof.stage_time_s(prof.class_of[dev], span.start, span.end)
            cpu_after = runtime[dev].send(out_bytes) if out_bytes else 0.0
            task = env.task(f"stage{i} input{k}", env.resource(f"device:{dev}"), cpu_before + compute_s + cpu_after,
                            prev, input=k, stage=i, device=dev, kind="compute", compute_s=compute_s,
                            compute_from_s=cpu_before)
            prev = [task]
            if out_bytes:
                prev = [_wire(env, prof, dev, nxt, out_bytes, task, k, f"cut{i}")]
                sent_bytes += out_bytes
                cpu_before = runtime[nxt].recv(out_bytes)
        last_compute.append(prev[0])
    timeline = env.run()
    return Simulation(_report(plan, prof, spans, timeline, inputs, seats if warmup is None else warmup,
                              sent_bytes), timeline)


def _wire(env: Environment, prof: GraphProfile, a: str, b: str, nbytes: int, after: Task, k: int, what: str) -> Task:
    """The channel from a to b carrying a message (the devices' CPU work for it is in their own tasks)."""
    ch = prof.cluster.channel(a, b)
    if ch is None:
        raise EdgewiseError(f"plan: devices {a} and {b} follow each other but no link or medium of cluster "
                            f"{prof.cluster.name} joins them")
    key = ch.name if ch.shared else f"{ch.name}:{a}->{b}"
    return env.task(f"{what} input{k} {a}->{b}", env.resource(f"channel:{key}"), nbytes / ch.bandwidth_bytes_per_s,
                    [after], lag_s=ch.latency_s, input=k, kind="transfer", bytes=nbytes)


def _report(plan: Plan, prof: GraphProfile, spans, timeline: list[Span], inputs: int, warmup: int,
            sent_bytes: int) -> Report:
    # As the runtime times them: an input begins when stage 0 starts computing it and ends when
    # the last stage has computed it (making, receiving and sending are outside that span).
    last = len(spans) - 1
    begin = {s.tags["input"]: s.start_s + s.tags["compute_from_s"] for s in timeline if s.tags.get("stage") == 0}
    end = {s.tags["input"]: s.start_s + s.tags["compute_from_s"] + s.tags["compute_s"]
           for s in timeline if s.tags.get("stage") == last}
    ks = sorted(end)
    throughput, latency, window = stream_metrics([begin[k] for k in ks], [end[k] for k in ks], warmup)
    measured = set(ks[min(warmup, len(ks) - 1):])
    compute = [s for s in timeline if s.tags.get("kind") == "compute" and s.tags["input"] in measured]
    per_stage = [statistics.median(s.tags["compute_s"] for s in compute if s.tags["stage"] == i)
                 for i in range(len(spans))]
    devices = [d for sp in spans for d in sp.devices]
    busy = {d: sum(s.end_s - s.start_s for s in timeline if s.resource == f"device:{d}" and s.tags["input"] in measured)
            for d in devices}
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
