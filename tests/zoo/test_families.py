"""Every model family in the zoo traces at op level with FLOPs equal to torch's count of the
whole forward, and keeps the edges its architecture is known for. Smallest inputs that each
architecture allows, random weights."""
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from edgewise import zoo
from edgewise.graph.trace import trace
from edgewise.zoo import llm, small, vision

SMALL = {
    "resnet18": lambda: vision.resnet18(image_size=32),
    "resnet50": lambda: vision.resnet50(image_size=32),
    "mobilenet_v2": lambda: vision.mobilenet_v2(image_size=32),
    "mobilenet_v3_small": lambda: vision.mobilenet_v3_small(image_size=32),
    "efficientnet_b0": lambda: vision.efficientnet_b0(image_size=32),
    "googlenet": lambda: vision.googlenet(image_size=32),
    "inception_v3": lambda: vision.inception_v3(image_size=75),
    "vgg16": lambda: vision.vgg16(image_size=32),
    "alexnet": lambda: vision.alexnet(image_size=63),
    "vit_b_16": lambda: vision.vit_b_16(image_size=32),
    "mlp": small.mlp,
    "mlp_mixer": lambda: small.mlp_mixer(image_size=32, depth=2),
    "unet": lambda: small.unet(image_size=32, levels=3),
    "m5": small.m5,
    "gpt2": lambda: llm.gpt2(n_layer=2, seq_len=8),
    "llama": lambda: llm.llama(layers=2, seq_len=8),
}


def test_every_zoo_name_has_a_small_case_here():
    assert set(zoo.names()) - set(SMALL) == {"gpt2-xl"}


@pytest.fixture(scope="module", params=sorted(SMALL))
def traced(request):
    torch.manual_seed(0)
    model, inputs = SMALL[request.param]()
    return request.param, model, inputs, trace(model, inputs, f"zoo:{request.param}")


def test_traces_at_op_level_as_a_connected_dag(traced):
    name, model, inputs, graph = traced
    assert graph.level == "op"
    seen = set()
    for op in graph.ops:
        assert all(s in seen or s.startswith("input:") for s in op.inputs), op.name
        seen.add(op.name)
    assert graph.outputs and set(graph.outputs) <= seen
    # Every op but the first reachable ones has a producer: folding views kept edges.
    assert all(op.inputs or op.kind.startswith(("aten.arange", "aten.zeros", "aten.ones",
                                                "aten.full", "aten.scalar_tensor"))
               for op in graph.ops), name


def test_op_flops_add_up_to_the_whole_forward(traced):
    name, model, inputs, graph = traced
    with FlopCounterMode(display=False) as counter:
        model(*inputs)
    assert graph.total_flops == counter.get_total_flops() > 0


def test_parameter_bytes_cover_the_weights(traced):
    name, model, inputs, graph = traced
    unique = {id(t): t for t in model.state_dict(keep_vars=True).values()}
    weights = sum(t.numel() * t.element_size() for t in unique.values() if t.is_floating_point())
    # Integer buffers no op reads (BatchNorm's num_batches_tracked) are not counted; non-persistent
    # float buffers (rotary frequencies) are, so allow a little either way.
    assert abs(graph.total_param_bytes - weights) <= 0.001 * weights


def test_residual_skips_and_concat_branches_are_edges():
    graph = trace(*vision.resnet18(image_size=32))
    adds = [op for op in graph.ops if op.kind.startswith("aten.add")]
    assert len(adds) == 8 and all(len(op.inputs) == 2 for op in adds)

    graph = trace(*vision.googlenet(image_size=32))
    cats = [op for op in graph.ops if op.kind.startswith("aten.cat")]
    assert len(cats) == 9 and all(len(op.inputs) == 4 for op in cats)


def test_unet_long_skip_joins_the_first_encoder_block_to_the_last_decoder_block():
    graph = trace(*small.unet(image_size=32, levels=3))
    cats = [op for op in graph.ops if op.kind.startswith("aten.cat")]
    last = cats[-1]
    producers = {graph.index[p] for p in last.inputs}
    first_block_end = max(i for i, op in enumerate(graph.ops) if op.layer.startswith("down.0."))
    assert first_block_end in producers
    assert graph.index[last.name] - first_block_end > 30       # a long skip, not a neighbour


def test_gpt2_xl_traces_on_meta_without_allocating_weights():
    model, inputs = llm.gpt2_xl(seq_len=16)
    assert all(p.device.type == "meta" for p in model.parameters())
    graph = trace(model, inputs, "zoo:gpt2-xl")
    assert graph.level == "op"
    params = sum(p.numel() for p in model.parameters())
    assert 1.5e9 < params < 1.6e9
    assert graph.total_param_bytes == params * 4                  # the tied head counts once
    blocks = {op.layer.split(".")[3] for op in graph.ops if op.layer.startswith("lm.transformer.h.")}
    assert len(blocks) == 48
    # Forward FLOPs of a decoder are about 2 * parameters * tokens, plus attention.
    assert 0.95 < graph.total_flops / (2 * params * 16) < 1.1
