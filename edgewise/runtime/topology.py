"""Which process is which: ranks for the plan's (stage, replica) pairs, and who feeds whom.

Rank order follows the plan: stage 0's devices first. Input k is served by replica
k mod (replicas of that stage) at every stage, so each message's sender and receiver are known
to both ends without any coordination.
"""
from __future__ import annotations

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
