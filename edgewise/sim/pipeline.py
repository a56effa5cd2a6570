"""A plan serving a stream of inputs, played out on the event core.

Each stage's replicas take inputs in turn (input k on replica k mod r), like the runtime. A
device does one thing at a time; a stage's task on it covers computing and sending the result
on (and on the first device making the input before), each for what the cost model says it
costs there (the runtime's own costs, cost/runtime.py, where they were measured; the first
device also makes and forwards the inputs of stage 0's other replicas, and an input it makes
and finishes itself costs it the worker loop's own work, which sends and receives include
elsewhere). Receiving a message costs the device its CPU right after that input's step, before
its next: gloo's thread takes the message in while the worker waits or computes, and the
worker starts computing as soon as it has arrived (mlp on edge-fleet: a Pi began 0.25 ms after
the message's 3 ms link latency, while its measured receive cost is 1.4 ms), so that cost holds
the device but not the input. Sending a cut also occupies its channel (a private link's
direction, or the whole shared medium, which every transfer on it queues for) for bytes /
bandwidth and reaches the receiver a propagation latency later. Inputs arrive on stage 0's
first device, which forwards the other replicas' inputs. Back-pressure is the runtime's: a
message moves only once its receiver asks for it (when it starts its previous step), a device's
messages leave one at a time in the order it queued them (its one sender thread: a message
waiting for its receiver holds back the ones behind it, to other receivers too), and a
device stops while SEND_QUEUE messages wait on its sender thread, one is being sent and its
own next one waits to be queued (a link's emulated latency is waited out on the sender
thread, so it holds those places too). With `Plan.max_in_flight` the first device takes input
k only once the last stage's note that input k - max_in_flight is out has reached it. Where a
device's step time was measured to vary (GraphProfile.step_spread_s), each of its steps is
drawn around its mean from a seeded generator, so a prediction is the same every time.
"""
from __future__ import annotations

import math
import random
import statistics
from dataclasses import dataclass

from edgewise.cost.roofline import CostModel
from edgewise.cost.runtime import NOTE_BYTES, SEND_QUEUE
from edgewise.errors import EdgewiseError
from edgewise.graph.opgraph import OpGraph
from edgewise.hardware.cluster import Channel
from edgewise.plan.evaluate import StageSpan, sends_from
from edgewise.plan.planners import spans_of
from edgewise.plan.profile import GraphProfile, profile
from edgewise.plan.report import Report, Span, stream_metrics
from edgewise.plan.schema import Plan
from edgewise.plan.window import note_admitting, sends_note
from edgewise.sim.core import Environment, Task


# A worker's step k starts once its put of message k-1 returned, that is once its sender thread
# took message k-3 off the full queue, which it does when it has sent message k-4: so four
# messages are between ready and sent (a link's emulated latency counts down for all of them).
SENDS_IN_FLIGHT = SEND_QUEUE + 2
SEED = 0        # step times drawn around their means (RuntimeCost.spread_s) are the same every time


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
    source = spans[0].devices[0]
    input_bytes = int(prof.live_bytes[0])
    runtime = {d: cost.runtime_cost(plan.cluster.node(d).device) for sp in spans for d in sp.devices}
    sent: dict[str, list[Task]] = {d: [] for d in runtime}   # each device's messages, in order
    sent_bytes = 0

    def sender_room(dev: str) -> list[Task]:
        """A device goes on only while its sender's queue has room (else its put blocks)."""
        return [sent[dev][-SENDS_IN_FLIGHT]] if len(sent[dev]) >= SENDS_IN_FLIGHT else []

    def message(a: str, b: str, nbytes: int, after: Task, k: int, what: str) -> Task:
        # The runtime's sender waits out the link's propagation latency first (netem being
        # unavailable, that is how the testbed adds it), then the message moves once its receiver
        # has asked for it: gloo sends nothing before the receive is posted (gloo/transport/tcp/
        # pair.cc, handleRemotePendingRecv), and a worker posts the next one as it starts a step,
        # that is once its previous step and that step's received cost are done and the message
        # of the step it starts has arrived; and only after the sender's previous message (one
        # thread sends them in order).
        latency = _channel(prof, a, b).latency_s
        if latency:
            after = env.task(f"latency {what} input{k}", env.resource("propagation", capacity=math.inf),
                             latency, [after], input=k, kind="latency")
        wire = _wire(env, prof, a, b, nbytes, [after] + asks.get(b, []) + sent[a][-1:], k, what)
        sent[a].append(wire)
        return wire

    outs: dict[int, Task] = {}      # input k's note reaching the first device that k is out
    taken: set[int] = set()
    done: dict[str, Task] = {}         # each device's latest step, done with taking its message in
    asks: dict[str, list[Task]] = {}   # what starts each device's latest step, and so asks for its next message
    tails: dict[str, Task] = {}     # each device's cost of its latest received message, which its next task waits for

    draws = random.Random(SEED)

    def uneven(dev: str, span: StageSpan, mean_s: float) -> float:
        """A step's time drawn around its mean, where its device's spread was measured."""
        std = prof.step_spread_s(prof.class_of[dev], span.start, span.end, mean_s)
        if not std or mean_s <= 0:
            return mean_s
        sigma = math.sqrt(math.log1p((std / mean_s) ** 2))
        return mean_s * draws.lognormvariate(-sigma * sigma / 2, sigma)

    def after_tail(dev: str) -> list[Task]:
        return [tails[dev]] if dev in tails else []
    for k in range(inputs):
        # the first device makes every input, once input k - max_in_flight is out (plan/window.py)
        note = note_admitting(plan, k, inputs)
        prev: list[Task] = [outs[note]] if note is not None else []
        cpu_before, received = runtime[source].input(input_bytes), 0.0
        if prev and prev[0].tags["kind"] == "latency" and note not in taken:
            taken.add(note)                                    # the first to wait for a note takes it in
            cpu_before += runtime[source].receive(NOTE_BYTES)
        for i, span in enumerate(spans):
            dev = span.devices[k % len(span.devices)]
            last = i == len(spans) - 1
            if i == 0 and dev != source:
                forward = env.task(f"forward input{k}", env.resource(f"device:{source}"),
                                   cpu_before + runtime[source].send(input_bytes),
                                   prev + sender_room(source) + after_tail(source), input=k, kind="runtime")
                prev = [message(source, dev, input_bytes, forward, k, "input")]
                sent_bytes += input_bytes
                cpu_before, received = 0.0, runtime[dev].receive(input_bytes)
            nxt = spans[i + 1].devices[k % len(spans[i + 1].devices)] if i + 1 < len(spans) else None
            out_bytes = prof.cut_bytes(span.end) if nxt else 0
            alone = dev == source and prof.serves_alone(prof.class_of[dev], span.start, span.end)
            compute_s = uneven(dev, span, prof.stage_time_s(prof.class_of[dev], span.start, span.end, woken=not alone))
            notes = last and dev != source and sends_note(plan, k, inputs)
            if out_bytes or notes:
                cpu_after = runtime[dev].send(out_bytes or NOTE_BYTES)
            else:   # a last stage: an input it made itself it also finishes, with nothing sent or received
                cpu_after = prof.finishing_s(prof.class_of[dev]) if i == 0 and dev == source else 0.0
            task = env.task(f"stage{i} input{k}", env.resource(f"device:{dev}"), cpu_before + compute_s + cpu_after,
                            prev + sender_room(dev) + after_tail(dev), input=k, stage=i, device=dev,
                            kind="compute", compute_s=compute_s, compute_from_s=cpu_before)
            asks[dev] = ([done[dev]] if dev in done else []) + prev[:1]
            if received:
                tails[dev] = env.task(f"received input{k}", env.resource(f"device:{dev}"), received, [task],
                                      input=k, kind="runtime")
            done[dev] = tails[dev] if received else task
            prev = [task]
            if notes:
                ch = prof.cluster.channel(dev, source)     # none: they talk through other hosts; no delay known
                outs[k] = env.task(f"out input{k} {dev}->{source}", env.resource("propagation", capacity=math.inf),
                                   ch.latency_s if ch else 0.0, [task], input=k, kind="latency")
                sent[dev].append(outs[k])                   # the note queues on the sender thread too
                sent_bytes += NOTE_BYTES
            elif last and sends_note(plan, k, inputs):
                outs[k] = task
            if out_bytes:
                prev = [message(dev, nxt, out_bytes, task, k, f"cut{i}")]
                sent_bytes += out_bytes
                cpu_before, received = 0.0, runtime[nxt].receive(out_bytes)
    timeline = env.run()
    return Simulation(_report(plan, prof, spans, timeline, inputs, seats if warmup is None else warmup,
                              sent_bytes), timeline)


def _channel(prof: GraphProfile, a: str, b: str) -> Channel:
    ch = prof.cluster.channel(a, b)
    if ch is None:
        raise EdgewiseError(f"plan: devices {a} and {b} follow each other but no link or medium of cluster "
                            f"{prof.cluster.name} joins them")
    return ch


def _wire(env: Environment, prof: GraphProfile, a: str, b: str, nbytes: int, after: list[Task], k: int,
          what: str) -> Task:
    """The channel from a to b carrying a message (the devices' CPU work for it is in their own tasks)."""
    ch = _channel(prof, a, b)
    key = ch.name if ch.shared else sends_from(a)
    return env.task(f"{what} input{k} {a}->{b}", env.resource(f"channel:{key}"), nbytes / ch.bandwidth_bytes_per_s,
                    after, input=k, kind="transfer", bytes=nbytes)


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
