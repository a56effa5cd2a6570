"""Which process is which: ranks for the plan's (stage, replica) pairs, and who feeds whom.

Rank order follows the plan: stage 0's devices first. Input k is served by replica
k mod (replicas of that stage) at every stage, so each message's sender and receiver are known
to both ends without any coordination.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from edgewise.plan.schema import Plan


@dataclass(frozen=True)
class Seat:
    rank: int
    stage: int
    replica: int
    device: str


def seats(plan: Plan) -> list[Seat]:
    out = []
    for i, st in enumerate(plan.stages):
        for j, dev in enumerate(st.devices):
            out.append(Seat(rank=len(out), stage=i, replica=j, device=dev))
    return out


def rank_for(plan: Plan, stage: int, k: int) -> int:
    """The rank that serves input k at `stage`."""
    before = sum(len(st.devices) for st in plan.stages[:stage])
    return before + k % len(plan.stages[stage].devices)


def inputs_of(plan: Plan, seat: Seat, n_inputs: int) -> range:
    """The input indices this seat serves, in order."""
    return range(seat.replica, n_inputs, len(plan.stages[seat.stage].devices))


def pairs(plan: Plan) -> list[tuple[int, int]]:
    """Every (sender rank, receiver rank) that carries messages, in one order all ranks agree on:
    the first device handing inputs to stage 0's other replicas, each cut, and with an
    in-flight bound the last stage telling the first device that an input is out. Input k goes
    from replica k mod m to replica k mod n, so lcm(m, n) inputs show every pair of a cut."""
    out = {(0, rank_for(plan, 0, k)) for k in range(len(plan.stages[0].devices))}
    for i in range(len(plan.stages) - 1):
        m, n = len(plan.stages[i].devices), len(plan.stages[i + 1].devices)
        out |= {(rank_for(plan, i, k), rank_for(plan, i + 1, k)) for k in range(math.lcm(m, n))}
    if plan.max_in_flight:
        out |= {(rank_for(plan, len(plan.stages) - 1, k), 0) for k in range(len(plan.stages[-1].devices))}
    return sorted(out - {(0, 0)})
