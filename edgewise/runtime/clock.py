"""One time origin for every rank of a run.

Each process times its inputs on its own clock, and an input's latency is the last stage's end
minus the first stage's begin: two processes, two clocks. Counting each from the moment it
left the start barrier is not enough, because ranks leave a barrier up to a message apart:
over the slow-link testbed's 10 Mbit/s links the last stage left 4.7 ms (host time) after
the first, and every latency came out that much short. So each rank reads rank 0's clock
over a few round trips (Cristian's algorithm: the trip with the least delay, its midpoint
taken as the moment rank 0 read its clock), and all ranks count from one instant of rank 0's
clock, whether they share a host or not.
"""
from __future__ import annotations

import math
import time

import torch
import torch.distributed as dist

ROUND_TRIPS = 8   # the least delay of a few is close to the link's; queueing only adds to it


def shared_origin(dev: torch.device) -> float:
    """The same instant on every rank (rank 0's now), as a reading of this rank's `perf_counter`.

    Every rank of the default group must call it together; no rank returns before rank 0 has
    heard from every other, so it is the run's start barrier as well.
    """
    rank, world = dist.get_rank(), dist.get_world_size()
    stamp = torch.zeros(1, dtype=torch.float64, device=dev)
    offset = 0.0   # this clock minus rank 0's
    if rank == 0:
        for r in range(1, world):
            for _ in range(ROUND_TRIPS):
                dist.recv(stamp, src=r)
                stamp.item()   # on NCCL, recv returns before the message is in: wait for it
                stamp.fill_(time.perf_counter())
                dist.send(stamp, dst=r)
    else:
        best = (math.inf, 0.0)
        for _ in range(ROUND_TRIPS):
            sent = time.perf_counter()
            dist.send(stamp, dst=0)
            dist.recv(stamp, src=0)
            theirs = stamp.item()
            back = time.perf_counter()
            best = min(best, (back - sent, (sent + back) / 2 - theirs))
        offset = best[1]
    origin = torch.tensor([time.perf_counter() if rank == 0 else 0.0], dtype=torch.float64, device=dev)
    dist.broadcast(origin, src=0)
    return origin.item() + offset
