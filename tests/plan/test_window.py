"""The in-flight bound's rules (plan/window.py): a note always comes before the input it
admits, from the replica that served the input it vouches for, and says no less than needed."""
from hypothesis import given
from hypothesis import strategies as st

from edgewise.hardware.cluster import Cluster, Device, Node
from edgewise.plan.schema import Plan, Stage
from edgewise.plan.window import note_admitting, note_every, sends_note

DEV = Device(name="pi", peak_flops_per_s={"float32": 1e10}, memory_bytes=1 << 30, mem_bandwidth_bytes_per_s=1e9)


def plan_with(bound, last_replicas):
    names = ["a"] + [f"b{j}" for j in range(last_replicas)]
    return Plan(model="m", cluster=Cluster(name="c", nodes=[Node(name=n, device=DEV) for n in names]),
                stages=[Stage(devices=["a"], ops=["x"]), Stage(devices=names[1:], ops=["y"])],
                max_in_flight=bound)


@given(st.integers(1, 40), st.integers(1, 5), st.integers(1, 300))
def test_each_input_waits_for_a_note_sent_before_it_that_covers_the_input_bound_ago(bound, m, n):
    plan = plan_with(bound, m)
    for k in range(n):
        note = note_admitting(plan, k, n)
        if k < bound:
            assert note is None
            continue
        j = k - bound
        assert j <= note < k                      # covers input j, and is admitted before k: no deadlock
        assert note % m == j % m                  # the replica that served j says so
        assert sends_note(plan, note, n)


@given(st.integers(1, 40), st.integers(1, 5))
def test_notes_keep_the_bound_above_half(bound, m):
    plan = plan_with(bound, m)
    assert 1 <= note_every(plan) and m * (note_every(plan) - 1) <= bound / 2


def test_no_bound_means_no_notes():
    plan = plan_with(None, 2)
    assert not any(sends_note(plan, k, 10) for k in range(10))
    assert all(note_admitting(plan, k, 10) is None for k in range(10))
