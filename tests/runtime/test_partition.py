"""Cutting a model anywhere in topological order and running the stages in turn gives the
model's own output; what crosses a cut is exactly what later stages still need."""
import pytest
import torch
import torchvision
from hypothesis import given, settings, strategies as st
from torch import nn

from edgewise.errors import EdgewiseError
from edgewise.graph.stages import export_module, run_stage
from edgewise.hardware.cluster import Cluster, Device, Node
from edgewise.plan.schema import Plan, Stage
from edgewise.runtime.partition import split, to_device
from edgewise.runtime.wire import pack, unpack, wire_specs
from edgewise.zoo import llm

DEV = Device(name="pi", peak_flops_per_s={"float32": 1e10}, memory_bytes=1 << 30,
             mem_bandwidth_bytes_per_s=1e9)


class LongSkip(nn.Module):
    """U-Net-like: the first activation is needed again at the very end."""

    def __init__(self):
        super().__init__()
        self.enc = nn.Conv2d(3, 8, 3, padding=1)
        self.mid = nn.Sequential(nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1))
        self.dec = nn.Conv2d(16, 4, 1)

    def forward(self, x):
        e = self.enc(x)
        return self.dec(torch.cat([e, self.mid(e)], dim=1)), e.mean()


def op_names(model, inputs):
    return [n.name for n in export_module(model, inputs).graph.nodes if n.op == "call_function"]


def plan_for(names, cuts):
    bounds = [0, *cuts, len(names)]
    stages = [Stage(devices=[f"d{i}"], ops=names[a:b]) for i, (a, b) in enumerate(zip(bounds, bounds[1:]))]
    return Plan(model="test", cluster=Cluster(name="c", nodes=[Node(name=f"d{i}", device=DEV) for i in range(len(stages))]),
                stages=stages)


def run_staged(model, inputs, plan, through_wire=False):
    staged = split(model, inputs, plan)
    specs = wire_specs(staged, inputs)
    env = dict(zip(staged.inputs, inputs))
    with torch.inference_mode():
        for i, s in enumerate(staged.stages):
            env = run_stage(s, env, staged.params)
            if through_wire:
                env = unpack(specs[i + 1], pack(specs[i + 1], env))
    return [env[n] for n in staged.outputs], staged


@pytest.fixture(scope="module")
def long_skip():
    torch.manual_seed(0)
    model, x = LongSkip().eval(), (torch.randn(1, 3, 16, 16),)
    return model, x, op_names(model, x)


@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_any_contiguous_cut_reproduces_the_model(long_skip, data):
    model, x, names = long_skip
    k = data.draw(st.integers(1, min(4, len(names))))
    cuts = sorted(data.draw(st.sets(st.integers(1, len(names) - 1), min_size=k - 1, max_size=k - 1)))
    outs, _ = run_staged(model, x, plan_for(names, cuts), through_wire=True)
    with torch.inference_mode():
        ref = model(*x)
    assert all(torch.equal(a, b) for a, b in zip(outs, ref))


def test_long_skip_travels_across_every_cut_it_spans(long_skip):
    model, x, names = long_skip
    first_conv = names.index(next(n for n in names if "conv" in n))
    _, staged = run_staged(model, x, plan_for(names, [first_conv + 1, first_conv + 3]))
    assert len(staged.stages[0].sends) >= 1
    # the encoder output is still live after the middle stage: it is sent twice
    assert len(staged.stages[1].sends) >= 2


def test_resnet_skip_crossing_a_cut_matches_eager():
    torch.manual_seed(0)
    model, x = torchvision.models.resnet18(weights=None).eval(), (torch.randn(1, 3, 32, 32),)
    names = op_names(model, x)
    outs, staged = run_staged(model, x, plan_for(names, [len(names) // 3, 2 * len(names) // 3]))
    with torch.inference_mode():
        assert torch.allclose(outs[0], model(*x), atol=1e-5)


def test_plan_naming_ops_the_model_lacks_is_refused(long_skip):
    model, x, names = long_skip
    plan = plan_for(names + ["conv_that_does_not_exist"], [1])
    with pytest.raises(EdgewiseError, match="conv_that_does_not_exist"):
        split(model, x, plan)


def test_stages_moved_to_another_device_make_nothing_on_the_cpu():
    # GPT-2's export names the CPU in arange/to/metadata ops; on a GPU those would make CPU
    # tensors mid-stage. The meta device stands in for the GPU: mixing it with CPU tensors fails.
    model, inputs = llm.gpt2(n_layer=2, n_embd=64, n_head=2, seq_len=8)
    names = op_names(model, inputs)
    staged = split(model, inputs, plan_for(names, [len(names) // 2]))
    meta = torch.device("meta")
    env = {n: x.to(meta) for n, x in zip(staged.inputs, inputs)}
    for stage in staged.stages:
        to_device(stage, meta)
        env = run_stage(stage, env, {n: staged.params[n].to(meta) for n in stage.param_names})
    (out,) = env.values()
    assert out.device == meta and out.shape == (1, 8, 50257)
