"""The one shape in which predictions (sim/) and measurements (runtime/) are reported."""
from __future__ import annotations

from pydantic import BaseModel, Field


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
