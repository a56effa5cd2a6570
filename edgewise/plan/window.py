"""The bound on inputs in flight (`Plan.max_in_flight`): which inputs the last stage sends a
note for, and which note lets the first device take which input.

The first device takes input k once input k - max_in_flight is out. It learns that from notes
the last stage's replicas send it. A note costs a message on the device that is often the
slowest, so a replica sends one only every `note_every` of its inputs (and after its last),
and each note says that all of that replica's inputs up to it are out. The bound then holds
between max_in_flight - (note_every - 1) x replicas and max_in_flight. Both the runtime and
the simulator use these rules, so they agree on what waits for what.
"""
from __future__ import annotations

from edgewise.plan.schema import Plan


def note_every(plan: Plan) -> int:
    """Every how many of its inputs a last-stage replica sends a note: as seldom as keeps the
    bound above half of max_in_flight (and a note always comes before the input it admits)."""
    if not plan.max_in_flight:
        return 1
    return max(1, plan.max_in_flight // (2 * len(plan.stages[-1].devices)))


def sends_note(plan: Plan, k: int, n_inputs: int) -> bool:
    """Whether the last stage sends a note once input k is out."""
    if not plan.max_in_flight:
        return False
    m, every = len(plan.stages[-1].devices), note_every(plan)
    return (k // m) % every == every - 1 or k + m >= n_inputs


def note_admitting(plan: Plan, k: int, n_inputs: int) -> int | None:
    """The input whose note lets the first device take input k; None: nothing to wait for."""
    j = k - (plan.max_in_flight or k + 1)
    if j < 0:
        return None
    m, every = len(plan.stages[-1].devices), note_every(plan)
    replica, position = j % m, j // m
    last_position = (n_inputs - 1 - replica) // m
    return replica + m * min(last_position, (position // every) * every + every - 1)
