"""The runtime's own CPU cost per input on a device: making an input, sending and receiving
messages, and the worker loop's own work where a device neither sends nor receives.

Each is a fixed cost plus a cost per byte, fitted by least squares to the "runtime" rows that
`edgewise profile` measured (runtime/costs.py). A device with no such rows costs nothing
here, which is what the simulator assumed before these were measured.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgewise.hardware.profile_db import Measurement

# Messages a worker's sender thread holds before the worker waits (runtime/worker.py), which the
# simulator plays out too (sim/pipeline.py): one constant so the two cannot drift apart.
SEND_QUEUE = 2
# The last stage's note to the first device that an input is out (Plan.max_in_flight).
NOTE_BYTES = 1
# The costs fitted as a fixed plus a per-byte part (RuntimeCost's Linear fields).
LINEAR_COSTS = ("input", "send", "recv", "loop")


@dataclass(frozen=True)
class Linear:
    fixed_s: float = 0.0
    per_byte_s: float = 0.0

    def __call__(self, nbytes: float) -> float:
        return self.fixed_s + self.per_byte_s * nbytes

    def scaled(self, factor: float) -> "Linear":
        return Linear(self.fixed_s * factor, self.per_byte_s * factor)


@dataclass(frozen=True)
class StageCosts:
    """What one stage of the model costs a device's runtime, measured on that stage itself as a
    worker runs it (runtime/costs.py, saved_stage_program): as RuntimeCost's figures of the same
    names, which were measured with the whole model as the step.

    Not the cost of a message received: on prefixes of m5 and of mobilenet_v2 from a tenth of
    the ops to the whole model, an emulated Pi's figure stayed within its round-to-round noise
    (0.97 to 1.23 ms, 2.60 to 2.69), so a stage's own is one more noisy sample of the model's
    (m5's last stage on edge-fleet's Pi 1.31 against the model's 1.26, on pi-fleet's 0.82
    against 1.02, where the runs paid about 0.98 and 1.16)."""
    wake_s: float
    spread_s: float     # of the stage's own step

    def scaled(self, factor: float) -> "StageCosts":
        return StageCosts(self.wake_s * factor, self.spread_s * factor)


@dataclass(frozen=True)
class RuntimeCost:
    input: Linear = Linear()        # the first device making (or loading) one input of these bytes
    send: Linear = Linear()         # packing a message and pushing it out
    recv: Linear = Linear()         # taking a message in and unpacking it (fitted; `receive` is what it costs)
    loop: Linear = Linear()         # an input the device both makes and finishes (send and recv include it)
    # What a stage's step costs a worker beyond the same step back to back, for the model it was
    # measured on (runtime/costs.py, measure_wake): woken for each input, the stage finds its
    # caches cooled by the runtime's own work in between.
    wake_s: float = 0.0
    # For that model too: what a device that makes and finishes every input itself, the whole
    # model on it, pays per input beyond making it and the back-to-back compute. Its loop's own
    # work finds the model's caches cooled and cools them in turn, so this replaces the loop and
    # the wake-up cost there (mlp alone on an emulated Jetson: about 0.1 ms an input beyond its
    # stage, against 0.02 for the loop measured on a two-op model). None: not measured.
    alone_s: float | None = None
    # For that model too: what a device pays for each message it receives in the model's stream
    # beyond the step's compute, a one-element message, the whole model its step: the model's
    # compute cools the caches that gloo's thread and the loop work in, as they cool the
    # model's. None: not measured.
    received_s: float | None = None
    # For that model too: how much its step's wall time varies from input to input, woken for
    # each (a robust standard deviation). A throttled device's steps come out uneven, and uneven
    # steps change a pipeline's steady state: in the testbed, one of three Pi replicas behind a
    # Jetson ends up pacing the Jetson's in-order sender while the others get their inputs just
    # in time, where evenly timed steps keep the three evenly spaced, each input waiting a whole
    # step. None: not measured, every step takes its mean.
    spread_s: float | None = None
    # For that model too, keyed by a stage's first and last op: the wake-up cost and the spread
    # measured on the stage itself, for the stages of a plan that were (a stage of part of the
    # model cools less: an emulated Pi's last two of m5's ops paid 0.19 ms of wake-up in runs
    # over slow-link and 0.24 in their own probe, where the whole model's probe charged 0.67).
    stages: dict[tuple[str, str], StageCosts] = field(default_factory=dict)

    def receive(self, nbytes: float) -> float:
        """Taking a message of `nbytes` in: where it was measured in the model's stream, its
        fixed part is that figure, an upper end for a stage that runs part of the model.

        Inside emulated Pis of edge-fleet, cluster ms beyond the step per input, fitted on the
        two-op model / with the model's figure / measured in a run: m5 0.48 / 0.90 / 0.73 (the
        stage a quarter of the model's compute), mobilenet_v2 0.80 / 2.71 / 2.04 (43%, a 49 KiB
        message). Scaling the excess by the stage's share of the compute charged 0.59 and 1.62,
        further off, and left m5's throughput 16% optimistic, against 7% pessimistic this way.
        """
        return self.recv(nbytes) if self.received_s is None else self.received_s + self.recv.per_byte_s * nbytes

    def slower(self, factor: float) -> "RuntimeCost":
        """The same work on a CPU `factor` times slower."""
        return RuntimeCost(self.input.scaled(factor), self.send.scaled(factor), self.recv.scaled(factor),
                           self.loop.scaled(factor), self.wake_s * factor,
                           None if self.alone_s is None else self.alone_s * factor,
                           None if self.received_s is None else self.received_s * factor,
                           None if self.spread_s is None else self.spread_s * factor,
                           {key: c.scaled(factor) for key, c in self.stages.items()})


FREE = RuntimeCost()


def fit_runtime(rows: list[Measurement]) -> RuntimeCost | None:
    """Fixed and per-byte costs from a device's "runtime" rows; None when input, send or recv
    has none (the loop is free where it was never measured, as before it was)."""
    lines = {}
    for what in LINEAR_COSTS:
        mine = [m for m in rows if m.kind == "runtime" and m.op_class == what]
        if mine:
            lines[what] = _fit_line([m.bytes for m in mine], [m.time_s for m in mine])
        elif what != "loop":
            return None
    return RuntimeCost(**lines)


def _fit_line(nbytes: list[float], times: list[float]) -> Linear:
    """Least squares with both coefficients kept non-negative (a cost never pays back)."""
    x, y = np.asarray(nbytes, dtype=float), np.asarray(times, dtype=float)
    if len(set(x)) < 2:
        return Linear(fixed_s=float(np.median(y)))
    slope, intercept = np.polyfit(x, y, 1)
    if intercept < 0:
        return Linear(per_byte_s=float(max(0.0, (x @ y) / (x @ x))))
    if slope < 0:
        return Linear(fixed_s=float(np.mean(y)))
    return Linear(fixed_s=float(intercept), per_byte_s=float(slope))
