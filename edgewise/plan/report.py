"""The one shape in which predictions (sim/) and measurements (runtime/) are reported: the
figures (`Report`) and the timeline behind them (`Span`s)."""
from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, Field


@dataclass(frozen=True)
class Span:
    """What ran where, and when: a task on a resource (`device:NAME`, `channel:NAME`, `sender:NAME`)."""
    task: str
    resource: str
    start_s: float
    end_s: float
    tags: dict


class LatencyStats(BaseModel):
    p50: float
    p99: float


class Report(BaseModel):
    source: str                                  # "simulate" or "run"
    inputs: int = Field(ge=0)                    # how many inputs the figures cover
    throughput_per_s: float
    latency_s: LatencyStats
    per_stage_s: list[float]                     # busy time per input of each stage
    bubble_fraction: float = 0.0                 # idle share of stage-time over the run
    bytes_sent: int = 0                          # per input, over all links
    peak_memory_bytes: dict[str, int] = Field(default_factory=dict)   # per device
    energy_j_per_inference: float | None = None
    time_dilation: float = 1.0                   # testbed: figures are in the cluster's own time


def stream_metrics(begin_s: list[float], end_s: list[float], warmup: int) -> tuple[float, LatencyStats, float]:
    """Throughput, latency percentiles and the measuring window of a stream of inputs.

    `begin_s[k]` is when the first stage took input k up, `end_s[k]` when the last stage
    finished it. The first `warmup` inputs fill the pipeline and are left out: the window runs
    from the last warm-up completion (or the first start, without warm-up) to the last
    completion. Simulation and measurement both report through this one function so that
    their figures mean the same thing.
    """
    n = len(end_s)
    if n == 0 or len(begin_s) != n:
        raise ValueError("stream_metrics needs one begin and one end per input")
    w = min(max(warmup, 0), n - 1)
    start = max(end_s[:w]) if w else min(begin_s)
    window = max(end_s[w:]) - start
    lat = sorted(e - b for b, e in zip(begin_s[w:], end_s[w:]))
    throughput = (n - w) / window if window > 0 else float("inf")
    return throughput, LatencyStats(p50=_percentile(lat, 50), p99=_percentile(lat, 99)), window


def _percentile(sorted_values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if len(sorted_values) == 1:
        return sorted_values[0]
    pos = (len(sorted_values) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


class Comparison(BaseModel):
    figure: str
    predicted: float
    measured: float

    @property
    def error(self) -> float:
        """Relative error of the prediction against the measurement."""
        return (self.predicted - self.measured) / self.measured if self.measured else float("inf")


def compare(predicted: Report, measured: Report) -> list[Comparison]:
    """Figure by figure, what was predicted against what was measured."""
    rows = [Comparison(figure="throughput_per_s", predicted=predicted.throughput_per_s, measured=measured.throughput_per_s),
            Comparison(figure="latency_s.p50", predicted=predicted.latency_s.p50, measured=measured.latency_s.p50),
            Comparison(figure="latency_s.p99", predicted=predicted.latency_s.p99, measured=measured.latency_s.p99),
            Comparison(figure="bytes_sent", predicted=predicted.bytes_sent, measured=measured.bytes_sent)]
    rows += [Comparison(figure=f"per_stage_s[{i}]", predicted=p, measured=m)
             for i, (p, m) in enumerate(zip(predicted.per_stage_s, measured.per_stage_s))]
    return rows
