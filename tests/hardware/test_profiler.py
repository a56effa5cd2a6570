"""The profiler on this machine: microbenchmarks give positive times for the work they name,
and per-op timing gives one row per op of the model's OpGraph, under the same names."""
import pytest
import torch

from edgewise.cost.roofline import op_class
from edgewise.errors import EdgewiseError
from edgewise.graph.trace import trace
from edgewise.hardware import profiler


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3)
        self.fc = torch.nn.Linear(8 * 6 * 6, 4)

    def forward(self, x):
        y = torch.relu(self.conv(x))
        return self.fc(y.flatten(1)) + 1.0


def test_quick_microbenchmarks_cover_matmul_conv_copy_and_overhead():
    dev = profiler.torch_device("cpu")
    cases = profiler.microbenchmark_cases(dev, quick=True)
    assert {c.kind for c in cases} == {"matmul", "conv", "memory", "overhead"}
    assert {c.dtype for c in cases if c.kind == "matmul"} == {"float32", "bfloat16"}
    rows = [profiler.run_case(c, dev, repeats=2) for c in cases]
    assert all(m.time_s > 0 and m.repeats == 2 for m in rows)
    mm = next(m for m in rows if m.kind == "matmul")
    n = mm.shape[0][0]
    assert mm.flops == 2 * n ** 3 and mm.op_class == "matmul"


def test_one_row_per_op_named_as_in_the_opgraph():
    model, inputs = Tiny().eval(), (torch.randn(2, 3, 8, 8),)
    graph = trace(model, inputs, "tiny")
    dev = torch.device("cpu")
    gm, dev_inputs = profiler.export_for_timing(model, inputs, dev)
    seen = []
    rows = profiler.time_ops(gm, dev_inputs, graph, dev, op_class, repeats=3, on_op=seen.append)
    assert [m.op_name for m in rows] == [op.name for op in graph.ops] == seen
    by_name = {m.op_name: m for m in rows}
    for op in graph.ops:
        m = by_name[op.name]
        assert m.kind == "op" and m.model == "tiny" and m.time_s > 0 and m.dtype == "float32"
        assert (m.flops, m.bytes, m.op_kind) == (op.flops, op.bytes_moved, op.kind)
    assert by_name[graph.ops[0].name].op_class == "conv"
    assert any(m.op_class == "matmul" and m.flops == 2 * 2 * 288 * 4 for m in rows)


def test_the_forward_is_timed_as_a_worker_runs_it_not_through_the_exported_modules_checks():
    model, inputs = Tiny().eval(), (torch.randn(2, 3, 8, 8),)
    graph = trace(model, inputs, "tiny")
    dev = torch.device("cpu")
    gm, dev_inputs = profiler.export_for_timing(model, inputs, dev)

    def refuse(*_):
        raise AssertionError("the exported module's own forward (input checks, pytrees) was timed")
    gm.register_forward_pre_hook(refuse)
    rows = profiler.time_ops(gm, dev_inputs, graph, dev, op_class, repeats=3)
    assert len(rows) == len(graph.ops) and all(m.time_s > 0 for m in rows)


def test_unexportable_model_and_bad_device_are_one_line_errors():
    class Branchy(torch.nn.Module):
        def forward(self, x):
            return x * 2 if x.sum() > 0 else x       # data-dependent control flow

    with pytest.raises(EdgewiseError, match="torch.export failed"):
        profiler.export_for_timing(Branchy(), (torch.randn(3),), torch.device("cpu"))
    with pytest.raises(EdgewiseError, match="use cpu or cuda"):
        profiler.torch_device("tpu")


def test_run_record_describes_this_machine():
    run = profiler.describe(torch.device("cpu"), command="edgewise profile")
    assert run.device == "local" and run.device_kind == "cpu" and run.memory_bytes > 0
    assert run.software["threads"] == 1 and run.command == "edgewise profile"


def test_a_model_that_cannot_be_exported_fails_before_any_measuring():
    class Branchy(torch.nn.Module):
        def forward(self, x):
            return x * 2 if x.sum() > 0 else x

    steps = []
    graph = trace(torch.nn.Linear(3, 3), (torch.randn(1, 3),), "stand-in")
    with pytest.raises(EdgewiseError, match="torch.export failed"):
        profiler.profile_device(torch.device("cpu"), op_class, quick=True, repeats=1,
                                model=(Branchy(), (torch.randn(3),), graph), progress=lambda *a: steps.append(a))
    assert steps == []


def test_cpu_clock_counts_work_not_waiting_and_divides_by_the_quota():
    import time as _time
    dev = torch.device("cpu")
    clock = profiler.Clock(cpu_quota_cores=0.25)
    assert profiler.median_time_s(lambda: _time.sleep(0.02), dev, repeats=3, clock=clock) < 0.01
    spin = lambda: sum(range(200_000))          # noqa: E731
    wall = profiler.median_time_s(spin, dev, repeats=5)
    assert profiler.median_time_s(spin, dev, repeats=5, clock=clock) == pytest.approx(4 * wall, rel=0.5)


def test_under_a_quota_of_several_cores_one_thread_still_takes_its_own_cpu_time(monkeypatch):
    readings = iter([(0.0, 0.0), (0.03, 0.0), (0.0, 0.0), (0.03, 0.03)])
    monkeypatch.setattr(profiler, "threads_cpu_s", lambda tids: next(readings))
    clock = profiler.Clock(cpu_quota_cores=3.0, threads=(1, 2))
    # one of two threads busy: no faster than that thread (a third of it over 3 cores would be 10 ms)
    assert clock.since(clock.now()) == pytest.approx(0.03)
    # both busy: still the busiest one's, as 60 ms over 3 cores is less
    assert clock.since(clock.now()) == pytest.approx(0.03)
    assert profiler.Clock(cpu_quota_cores=0.5).seconds(0.01) == pytest.approx(0.02)
    assert profiler.Clock(cpu_quota_cores=4.0).seconds(0.01) == pytest.approx(0.01)
    assert profiler.Clock().seconds(0.01) == 0.01


@pytest.mark.parametrize("forward_s", [1.0, 1e-9])     # the Python between ops shared out; timer overhead scaled away
def test_op_rows_add_up_to_the_whole_forward(monkeypatch, forward_s):
    model, inputs = Tiny().eval(), (torch.randn(2, 3, 8, 8),)
    graph = trace(model, inputs, "tiny")
    dev = torch.device("cpu")
    gm, dev_inputs = profiler.export_for_timing(model, inputs, dev)
    # the plain forward that time_ops times: a fixed figure, so the check does not race the host
    monkeypatch.setattr(profiler, "median_time_s", lambda call, dev, repeats, warmup=1, clock=profiler.WALL, span_s=0.0: forward_s)
    rows = profiler.time_ops(gm, dev_inputs, graph, dev, op_class, repeats=3)
    assert sum(m.time_s for m in rows) == pytest.approx(forward_s, rel=1e-9)
    assert all(m.time_s >= 0 for m in rows)


def test_a_short_call_is_timed_until_its_calls_span_the_wall_time_asked():
    calls = []
    profiler.median_time_s(lambda: calls.append(1), torch.device("cpu"), repeats=3, warmup=0, span_s=0.05)
    assert len(calls) > 3
    calls.clear()
    profiler.median_time_s(lambda: calls.append(1), torch.device("cpu"), repeats=3, warmup=0)
    assert len(calls) == 3
    calls.clear()
    profiler.median_time_s(lambda: calls.append(1), torch.device("cpu"), repeats=3, warmup=0, span_s=60.0)
    assert len(calls) == profiler.MAX_CALLS     # a bound, however fast the call
