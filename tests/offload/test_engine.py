"""The offload engine on the CPU: greedy output equals the plain model's, bit for bit."""
import copy

import pytest
import torch
from torch import nn

from edgewise.errors import EdgewiseError
from edgewise.offload.engine import OffloadEngine, decoder_layers
from edgewise.offload.measure import greedy
from edgewise.offload.models import build_random, prune_decoder_

IDS = torch.randint(3, 1000, (1, 8), generator=torch.Generator().manual_seed(0))


def tiny(name, sparsity=0.0):
    model = build_random(name, dtype=torch.float32, threads=1)
    if sparsity:
        prune_decoder_(model, decoder_layers(model)[1], sparsity)
    return model


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-opt"])
@pytest.mark.parametrize("codec, sparsity", [("dense", 0.0), ("bitmap", 0.5), ("bitmap", 0.7)])
@pytest.mark.parametrize("storage", ["host", "disk"])
def test_offloaded_greedy_equals_the_plain_model(name, codec, sparsity, storage, tmp_path):
    model = tiny(name, sparsity)
    ref = greedy(copy.deepcopy(model), IDS, 6)
    engine = OffloadEngine(model, "cpu", codec=codec, storage=storage, disk_dir=tmp_path, resident_layers=1)
    assert engine.stats().streamed_layers == 3
    out = greedy(model, IDS, 6)
    assert out.tokens == ref.tokens
    assert torch.equal(out.first_logits, ref.first_logits)


def test_bitmap_sends_fewer_bytes_than_dense():
    dense = OffloadEngine(tiny("tiny-llama", 0.5), "cpu", codec="dense", resident_layers=0).stats()
    sparse = OffloadEngine(tiny("tiny-llama", 0.5), "cpu", codec="bitmap", resident_layers=0).stats()
    assert sparse.streamed_dense_bytes_per_pass == dense.streamed_bytes_per_pass
    ratio = dense.streamed_bytes_per_pass / sparse.streamed_bytes_per_pass
    assert 1.8 < ratio <= 32 / 17  # fp32 at 50%: 32 bits -> 1 + 16; norms and block starts cost a little


def test_budget_decides_how_many_layers_stay_resident():
    model = tiny("tiny-llama")
    layer = sum(p.numel() * 4 for p in decoder_layers(model)[1][0].parameters())
    fixed = 2 * 1000 * 128 * 4 + 128 * 4
    budget = fixed + 2 * layer + layer + (1 << 20)  # slots + one resident layer + reserve (budget / 10)
    st = OffloadEngine(model, "cpu", gpu_memory_bytes=budget, reserve_bytes=1 << 20).stats()
    assert (st.resident_layers, st.streamed_layers) == (1, 3)
    big = OffloadEngine(tiny("tiny-llama"), "cpu", gpu_memory_bytes=1 << 30).stats()
    assert big.streamed_layers == 0


def test_too_small_budget_is_a_one_line_error():
    with pytest.raises(EdgewiseError, match="too small"):
        OffloadEngine(tiny("tiny-opt"), "cpu", gpu_memory_bytes=10_000)


def test_close_leaves_the_model_with_its_host_weights():
    model = tiny("tiny-llama", 0.5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    engine = OffloadEngine(model, "cpu", codec="bitmap", resident_layers=0)
    greedy(model, IDS, 2)
    engine.close()
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_model_without_decoder_layers_is_refused():
    with pytest.raises(EdgewiseError, match="no decoder layer list"):
        OffloadEngine(nn.Linear(4, 4), "cpu")


def test_random_models_are_deterministic_in_the_seed():
    a, b = tiny("tiny-opt"), tiny("tiny-opt")
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
