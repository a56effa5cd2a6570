"""Turning the records of a run into a `Report` and a timeline, the same shapes `simulate` predicts."""
from __future__ import annotations

import statistics

from edgewise.plan.report import LatencyStats, Report, Span, stream_metrics
from edgewise.plan.schema import Plan
from edgewise.runtime.topology import seats
from edgewise.runtime.worker import SeatRecord


def report(records: list[SeatRecord], plan: Plan, n_inputs: int, warmup: int,
           dilation: float = 1.0) -> Report:
    """Figures in the cluster's own time: testbed times are divided by the dilation factor."""
    last = len(plan.stages) - 1
    begin = {k: t for r in records if r.stage == 0 for k, t in r.begin_s.items()}
    end = {k: t for r in records if r.stage == last for k, t in r.end_s.items()}
    ks = sorted(end)
    throughput, latency, window = stream_metrics([begin[k] for k in ks], [end[k] for k in ks], warmup)
    w = min(warmup, len(ks) - 1)
    measured = set(ks[w:])
    per_stage = []
    for i in range(len(plan.stages)):
        times = [t for r in records if r.stage == i for k, t in r.compute_s.items() if k in measured]
        per_stage.append(statistics.median(times) / dilation)
    busy = sum(t for r in records for k, t in r.compute_s.items() if k in measured)
    bubble = max(0.0, 1.0 - busy / (len(records) * window)) if window > 0 else 0.0
    energy = None
    if window > 0:
        joules = 0.0
        for r in records:
            dev = plan.cluster.node(r.device).device
            b = sum(t for k, t in r.compute_s.items() if k in measured)
            joules += dev.busy_power_w * b + dev.idle_power_w * max(0.0, window - b)
        energy = joules / dilation / len(measured)
    return Report(
        source="run", inputs=len(measured), throughput_per_s=throughput * dilation,
        latency_s=LatencyStats(p50=latency.p50 / dilation, p99=latency.p99 / dilation),
        per_stage_s=per_stage, bubble_fraction=bubble,
        bytes_sent=round(sum(r.bytes_sent for r in records) / n_inputs),
        peak_memory_bytes={r.device: r.peak_memory_bytes for r in records},
        energy_j_per_inference=energy, time_dilation=dilation)


def timeline(records: list[SeatRecord], plan: Plan, dilation: float = 1.0) -> list[Span]:
    """What each device computed and what its sender thread sent, when, in the cluster's own
    time, as the simulator's spans: compute on `device:NAME` as in its timeline, each send on
    `sender:NAME`, from the moment the sender took it up (its link's emulated latency waited
    out) until gloo or NCCL let go of it, which includes waiting for the receiver to ask for it."""
    device = {s.rank: s.device for s in seats(plan)}
    spans = []
    for r in records:
        spans += [Span(f"stage{r.stage} input{k}", f"device:{r.device}", r.begin_s[k] / dilation,
                       r.end_s[k] / dilation, {"input": k, "stage": r.stage, "device": r.device, "kind": "compute"})
                  for k in r.compute_s]
        spans += [Span(f"send input{k} {r.device}->{device[dst]}", f"sender:{r.device}", start / dilation,
                       end / dilation, {"input": k, "device": r.device, "kind": "send"})
                  for k, dst, start, end in r.sends]
    return sorted(spans, key=lambda s: s.start_s)
