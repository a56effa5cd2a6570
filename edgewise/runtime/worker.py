"""One process of a pipelined run: receive a stage's inputs, compute, send the live set on.

Started the same way locally (by `runtime/launch.py`) and on real devices (by `torchrun`):
rank, world size and the rendezvous come from torchrun's environment variables. Sends run on
a thread of their own so a stage computes input k+1 while input k travels; a link's
propagation latency is added there, before the send (netem is not available to emulate it).
At the end every rank's timings (and the last stage's outputs) are gathered to rank 0,
which returns them for `runtime/measure.py`.
"""
from __future__ import annotations

import os
import queue
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Callable

import torch
import torch.distributed as dist

from edgewise.errors import EdgewiseError
from edgewise.plan.schema import Plan
from edgewise.proc import rss_bytes
from edgewise.runtime.partition import run_stage, split
from edgewise.runtime.topology import Seat, inputs_of, rank_for, seats
from edgewise.runtime.wire import pack, unpack, wire_specs

InputFn = Callable[[int], tuple]


@dataclass
class SeatRecord:
    """What one process saw, in seconds since the shared start barrier."""
    rank: int
    stage: int
    device: str
    begin_s: dict[int, float] = field(default_factory=dict)     # input k: stage took it up
    compute_s: dict[int, float] = field(default_factory=dict)   # input k: compute time
    end_s: dict[int, float] = field(default_factory=dict)       # input k: stage result ready
    bytes_sent: int = 0
    peak_rss_bytes: int = 0
    base_rss_bytes: int = 0
    param_bytes: int = 0
    outputs: dict[int, list[torch.Tensor]] = field(default_factory=dict)


def rendezvous_from_env() -> tuple[int, int]:
    """torchrun's RANK / WORLD_SIZE (MASTER_ADDR / MASTER_PORT are read by init_process_group)."""
    missing = [v for v in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if v not in os.environ]
    if missing:
        raise EdgewiseError(f"worker: {', '.join(missing)} not set; start workers with `edgewise run` "
                            f"or the torchrun lines of `edgewise run PLAN --print-launch`")
    try:
        return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    except ValueError:
        raise EdgewiseError("worker: RANK and WORLD_SIZE must be integers") from None


def serve(model: torch.nn.Module, example_inputs: tuple, plan: Plan, input_fn: InputFn,
          n_inputs: int, *, latency_scale: float = 1.0, timeout_s: float = 120.0,
          on_step: Callable[[int], None] = lambda k: None) -> list[SeatRecord] | None:
    """Serve `n_inputs` through this rank's stage. Rank 0 gets every rank's records."""
    rank, world = rendezvous_from_env()
    table = seats(plan)
    if world != len(table):
        raise EdgewiseError(f"worker: the plan needs {len(table)} processes, WORLD_SIZE is {world}")
    seat = table[rank]
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=timedelta(seconds=timeout_s))
    try:
        return _serve(model, example_inputs, plan, seat, input_fn, n_inputs, latency_scale, on_step)
    finally:
        dist.destroy_process_group()


def _serve(model, example_inputs, plan, seat: Seat, input_fn, n_inputs, latency_scale, on_step):
    staged = split(model, example_inputs, plan)
    specs = wire_specs(staged, example_inputs)
    st = staged.stages[seat.stage]
    params = {n: staged.params[n] for n in st.param_names}   # drop the other stages' weights
    del staged.params, model
    rec = SeatRecord(rank=seat.rank, stage=seat.stage, device=seat.device,
                     param_bytes=sum(p.numel() * p.element_size() for p in params.values()))
    last = seat.stage == len(plan.stages) - 1
    devices = {s.rank: s.device for s in seats(plan)}

    def latency_to(rank: int) -> float:
        ch = plan.cluster.channel(seat.device, devices[rank])
        return (ch.latency_s if ch else 0.0) * latency_scale

    sender = _Sender(rec)
    dist.barrier()
    t0 = time.perf_counter()
    rec.base_rss_bytes = rss_bytes()
    with torch.inference_mode():
        for k in _work_of(plan, seat, n_inputs):
            if seat.stage == 0 and seat.rank == 0:
                env = dict(zip(specs[0].names, input_fn(k)))
                if (dst := rank_for(plan, 0, k)) != 0:   # the first device hands the other replicas their inputs
                    sender.put(k, pack(specs[0], env), dst, latency_to(dst))
                    continue
            else:
                src = 0 if seat.stage == 0 else rank_for(plan, seat.stage - 1, k)
                buf = torch.empty(specs[seat.stage].nbytes, dtype=torch.uint8)
                dist.recv(buf, src=src, tag=k)
                env = unpack(specs[seat.stage], buf)
            begin = time.perf_counter()
            live = run_stage(st, env, params)
            end = time.perf_counter()
            rec.begin_s[k], rec.end_s[k], rec.compute_s[k] = begin - t0, end - t0, end - begin
            rec.peak_rss_bytes = max(rec.peak_rss_bytes, rss_bytes())
            if last:
                rec.outputs[k] = [live[n].clone() for n in st.sends]
            else:
                dst = rank_for(plan, seat.stage + 1, k)
                sender.put(k, pack(specs[seat.stage + 1], live), dst, latency_to(dst))
            on_step(k)
    sender.close()
    gathered: list = [None] * dist.get_world_size() if seat.rank == 0 else None
    dist.gather_object(rec, gathered, dst=0)
    return gathered


def _work_of(plan: Plan, seat: Seat, n_inputs: int) -> range:
    """Inputs this seat touches: its own share, and for the first device every input (it is the source)."""
    return range(n_inputs) if seat.rank == 0 else inputs_of(plan, seat, n_inputs)


class _Sender:
    """Sends in order on its own thread, each message no earlier than its link's latency after it was ready."""

    def __init__(self, rec: SeatRecord):
        self.rec = rec
        self.q: queue.Queue = queue.Queue(maxsize=2)   # bounds memory if the next stage is slow
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def put(self, k: int, buf: torch.Tensor, dst: int, latency_s: float) -> None:
        if self.error:
            raise self.error
        self.q.put((k, buf, dst, time.perf_counter() + latency_s))

    def close(self) -> None:
        self.q.put(None)
        self.thread.join()
        if self.error:
            raise self.error

    def _run(self) -> None:
        try:
            while (item := self.q.get()) is not None:
                k, buf, dst, due = item
                wait = due - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                dist.send(buf, dst=dst, tag=k)
                self.rec.bytes_sent += buf.numel()
        except BaseException as e:  # surfaced to the main thread at its next put/close
            self.error = e
