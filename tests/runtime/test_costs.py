"""Measuring the runtime's own costs by serving streams between two processes: sane rows, and a
bounded clean stop when one fails."""
import time

import pytest
import torch

from edgewise.cost.runtime import fit_runtime
from edgewise.errors import EdgewiseError
from edgewise.runtime import costs


def test_rows_cover_input_send_and_receive_at_every_size_and_the_loop_once():
    rows = costs.measure(messages={4096: 60, 1 << 20: 30}, sizes=(4096, 1 << 20), rounds=1)
    assert sorted((m.op_class, m.bytes) for m in rows) == sorted(
        [(k, float(b)) for k in ("input", "send", "recv") for b in (4096, 1 << 20)] + [("loop", 4096.0)])
    assert all(m.kind == "runtime" and m.time_s > 0 for m in rows)
    cost = fit_runtime(rows)
    assert cost.send(1 << 20) > cost.send(4096)     # a megabyte costs more to send than 4 KiB


@pytest.mark.parametrize("peer_code", ["import sys; sys.exit(3)", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"])
def test_a_side_that_dies_is_a_one_line_error_within_the_timeout(monkeypatch, peer_code):
    real_popen = costs.subprocess.Popen
    monkeypatch.setattr(costs, "PEER_TIMEOUT_S", 5.0)
    monkeypatch.setattr(costs.subprocess, "Popen", lambda argv, **kw: real_popen([argv[0], "-c", peer_code], **kw))
    t = time.monotonic()
    with pytest.raises(EdgewiseError, match="between two processes failed") as e:
        costs.measure(messages={4096: 5}, sizes=(4096,), rounds=1)
    assert time.monotonic() - t < 30 and "\n" not in str(e.value)


def test_measuring_twice_in_one_process_works():
    # torch.distributed names a process's groups by how many it made before: both sides run in
    # processes of their own, so a second measurement in the same caller still pairs up
    for _ in range(2):
        assert len(costs.measure(messages={4096: 5}, sizes=(4096,), rounds=1)) == 4


def test_each_row_is_the_median_over_the_rounds_and_counts_their_messages(monkeypatch):
    from edgewise.hardware.profile_db import Measurement
    times = iter([[3.0, 10.0], [1.0, 30.0], [2.0, 20.0]])     # per round: send, recv

    def one_pair(messages, sizes, quota_cores, ends, progress):
        send, recv = next(times)
        return [costs._row("send", 4096, send, 5), costs._row("recv", 4096, recv, 5)]
    monkeypatch.setattr(costs, "_measure_pair", one_pair)
    rows = {m.op_class: m for m in costs.measure(sizes=(4096,), rounds=3)}
    assert (rows["send"].time_s, rows["recv"].time_s) == (2.0, 20.0)
    assert rows["send"].repeats == 15 and isinstance(rows["send"], Measurement)


def test_the_probe_plan_cuts_after_the_add_so_one_x_sized_message_crosses():
    from edgewise.runtime.partition import split
    model, example, plan = costs.probe(4096, ("peer", "measurer"))
    staged = split(model, example, plan)
    assert [s.devices for s in plan.stages] == [["peer"], ["measurer"]]
    (sent,) = staged.stages[0].sends
    assert staged.stages[1].arg_names == [sent]
    # alone, the measurer makes and finishes each input: the whole model is its one stage
    _, _, alone = costs.probe(4096, ("measurer",))
    assert [s.devices for s in alone.stages] == [["measurer"]] and len(alone.stages[0].ops) == 2


def test_cost_beyond_compute_leaves_out_the_settling_inputs_and_the_compute():
    from edgewise.runtime.worker import SeatRecord
    rec = SeatRecord(rank=0, stage=0, device="measurer")
    for k in range(10):     # 3 ms of CPU per input, 1 ms of it computing; the first input cost 50 ms
        rec.cpu_s[k] = 0.050 + 0.003 * k
        rec.compute_cpu_s[k] = 0.001
    assert costs._beyond_compute(rec) == pytest.approx(0.002)


def test_the_wake_probe_runs_one_added_op_on_the_peer_and_the_whole_model_on_the_measurer():
    import torch
    from edgewise.graph.stages import run_stage
    from edgewise.runtime.partition import split
    model = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU()).eval()
    example = (torch.randn(1, 8),)
    woken, plan = costs.wake_probe(model, example)
    assert [s.devices for s in plan.stages] == [["peer"], ["measurer"]] and len(plan.stages[0].ops) == 1
    staged = split(woken, costs.TOKEN, plan)
    assert len(staged.stages[0].sends) == 1     # one message, of one element, crosses
    env = dict(zip(staged.inputs, costs.TOKEN))
    with torch.inference_mode():
        for st in staged.stages:
            env = run_stage(st, env, staged.params)
        out, token = [env[n] for n in staged.outputs]
        assert torch.allclose(out, model(*example)) and token.numel() == 1


@pytest.fixture
def saved_mlp(tmp_path):
    import torch
    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 8)).eval()
    path = str(tmp_path / "m.pt2")
    torch.export.save(torch.export.export(model, (torch.randn(1, 64),), strict=False), path)
    return path


def test_a_models_own_runtime_costs_are_times_of_their_own_never_negative(saved_mlp):
    found = costs.measure_wake(saved_mlp, rounds=1, inputs=30)
    assert 0.0 <= found.wake_s < 0.1 and 0.0 <= found.alone_s < 0.1
    # taking a message in is work of the receiving process (gloo's thread, unpacking, the loop)
    assert 0.0 < found.received_s < 0.1
    # wall time varies from step to step: never a negative or a step-sized figure for a tiny model
    assert 0.0 <= found.spread_s < 0.1


def test_a_robust_spread_is_that_of_a_normal_spread_and_ignores_a_rare_stall():
    import random
    draws = random.Random(3)
    steps = [draws.gauss(0.05, 0.002) for _ in range(2000)]
    assert costs.robust_std(steps) == pytest.approx(0.002, rel=0.1)
    assert costs.robust_std(steps[:-20] + [0.5] * 20) == pytest.approx(costs.robust_std(steps), rel=0.05)
    assert costs.robust_std([0.01] * 10) == 0.0


def test_the_alone_probe_serves_the_whole_model_on_one_device():
    import torch
    from edgewise.graph.stages import run_stage
    from edgewise.runtime.partition import split
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2)).eval()
    example = (torch.randn(1, 8),)
    plan = costs.one_device_plan(model, example)
    staged = split(model, example, plan)
    assert [s.devices for s in plan.stages] == [["measurer"]] and len(staged.stages) == 1
    with torch.inference_mode():
        env = run_stage(staged.stages[0], dict(zip(staged.inputs, example)), staged.params)
    assert torch.allclose(env[staged.outputs[0]], model(*example))


def test_a_wake_side_that_dies_is_a_one_line_error_within_the_timeout(monkeypatch, saved_mlp):
    real_popen = costs.subprocess.Popen
    monkeypatch.setattr(costs, "PEER_TIMEOUT_S", 5.0)
    monkeypatch.setattr(costs.subprocess, "Popen",
                        lambda argv, **kw: real_popen([argv[0], "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"], **kw))
    t = time.monotonic()
    with pytest.raises(EdgewiseError, match="what the model costs the runtime between two processes failed") as e:
        costs.measure_wake(saved_mlp, rounds=1, inputs=5)
    assert time.monotonic() - t < 30 and "\n" not in str(e.value)


class _Skip(torch.nn.Module):
    """A skip crosses the cut: the second stage receives two values."""

    def __init__(self):
        super().__init__()
        self.a, self.b = torch.nn.Linear(8, 8), torch.nn.Linear(8, 8)

    def forward(self, x):
        h = self.a(x).relu()
        return self.b(h) + x


def test_a_stage_program_computes_that_stage_on_what_it_receives(tmp_path):
    from edgewise.graph.stages import run_stage
    from edgewise.runtime.partition import split
    model, example = _Skip().eval(), (torch.randn(2, 8),)
    path = str(tmp_path / "m.pt2")
    torch.export.save(torch.export.export(model, example, strict=False), path)
    names = [n.name for n in torch.export.load(path).module().graph.nodes if n.op == "call_function"]
    plan = costs._probe_plan("skip", model, example, {"measurer": slice(0, 2), "peer": slice(2, None)})
    staged = split(model, example, plan)
    with costs.saved_stage_program(path, plan, 1) as stage_path:
        stage = torch.export.load(stage_path)
        received = tuple(stage.example_inputs[0])
        with torch.inference_mode():
            env = run_stage(staged.stages[0], dict(zip(staged.inputs, example)), staged.params)
            want = run_stage(staged.stages[1], env, staged.params)
            got = stage.module()(*received)
    assert len(received) == 2 and len(names) > 2        # the skip and the hidden value
    assert torch.allclose(got[0] if isinstance(got, (tuple, list)) else got, want[staged.outputs[0]])


def test_a_stage_is_measured_without_serving_it_alone(saved_mlp, tmp_path):
    program = torch.export.load(saved_mlp)
    model, example = program.module(), tuple(program.example_inputs[0])
    n = sum(1 for node in program.module().graph.nodes if node.op == "call_function")
    plan = costs._probe_plan("mlp", model, example, {"peer": slice(0, n // 2), "measurer": slice(n // 2, None)})
    with costs.saved_stage_program(saved_mlp, plan, 1) as stage_path:
        found = costs.measure_wake(stage_path, rounds=1, inputs=30, alone=False)
    assert found.alone_s is None and 0.0 <= found.wake_s < 0.1 and 0.0 < found.received_s < 0.1
