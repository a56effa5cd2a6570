"""Every rank counts from one instant, whatever its own clock reads."""
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from edgewise.runtime.clock import shared_origin
from edgewise.runtime.launch import free_port

SKEW_S = 1000.0   # rank 1's clock runs this far ahead of rank 0's
LATE_S = 0.05     # and rank 1 leaves the start this much later than rank 0


def _origin(rank: int, port: int, out) -> None:
    if rank == 1:
        real_clock, real_broadcast = time.perf_counter, dist.broadcast
        time.perf_counter = lambda: real_clock() + SKEW_S

        def late_broadcast(*args, **kwargs):   # the last message reaches rank 1 late, as over a slow link
            real_broadcast(*args, **kwargs)
            time.sleep(LATE_S)
        dist.broadcast = late_broadcast
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        out[rank] = shared_origin(torch.device("cpu"))
    finally:
        dist.destroy_process_group()


def test_ranks_agree_on_the_origin_despite_skewed_clocks():
    with mp.Manager() as m:
        out = m.dict()
        mp.spawn(_origin, args=(free_port(), out), nprocs=2)
        # rank 1's reading is rank 0's instant on rank 1's clock: SKEW_S ahead, to within a loopback round trip
        assert abs(out[1] - out[0] - SKEW_S) < 0.002
