"""The event core: dependencies, lags and resource capacity hold in every timeline."""
import pytest
from hypothesis import given, settings, strategies as st

from edgewise.sim.core import Environment


def test_dependency_and_lag_delay_the_dependent():
    env = Environment()
    a = env.task("a", env.resource("dev0"), 1.0, lag_s=0.5)
    b = env.task("b", env.resource("dev1"), 2.0, [a])
    env.run()
    assert (b.start_s, b.end_s) == (1.5, 3.5)


def test_capacity_one_serialises_first_come_first_served():
    env = Environment()
    r = env.resource("wifi")
    tasks = [env.task(f"t{i}", r, 1.0) for i in range(3)]
    env.run()
    assert [t.start_s for t in tasks] == [0.0, 1.0, 2.0]


def test_capacity_two_runs_two_at_once():
    env = Environment()
    r = env.resource("gpu", capacity=2)
    tasks = [env.task(f"t{i}", r, 1.0) for i in range(3)]
    env.run()
    assert sorted(t.start_s for t in tasks) == [0.0, 0.0, 1.0]


def test_cycle_is_reported():
    env = Environment()
    a = env.task("a", env.resource("r"), 1.0)
    b = env.task("b", env.resource("r"), 1.0, [a])
    a.after.append(b)
    with pytest.raises(ValueError, match="never ran"):
        env.run()


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.floats(0, 5), st.lists(st.integers(0, 30), max_size=3)),
                min_size=1, max_size=30))
def test_random_task_graphs_respect_deps_and_capacity(specs):
    env = Environment()
    tasks = []
    for i, (res, dur, deps) in enumerate(specs):
        tasks.append(env.task(f"t{i}", env.resource(f"r{res}"), dur, [tasks[d] for d in deps if d < i]))
    timeline = env.run()
    for t in tasks:
        assert all(t.start_s >= d.end_s - 1e-12 for d in t.after)
    for res in {s.resource for s in timeline}:
        spans = sorted((s.start_s, s.end_s) for s in timeline if s.resource == res)
        assert all(b[0] >= a[1] - 1e-12 for a, b in zip(spans, spans[1:]))
