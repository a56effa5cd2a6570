"""Pruning: exact sparsity, per-row balance, the lowest scores go, Wanda weighs by activations."""
import pytest
import torch

from edgewise.codecs.prune import activation_norms, prune_, wanda_scores
from edgewise.errors import EdgewiseError


def rand(shape, seed=0):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.5, 0.7, 1.0])
def test_row_balance_zeroes_exactly_the_smallest_in_every_row(sparsity):
    w0 = rand((37, 50))
    w = prune_(w0.clone(), sparsity, "row")
    k = round(50 * sparsity)
    assert ((w == 0).sum(dim=1) == k).all()
    for r in range(w.shape[0]):
        kept, gone = w0[r][w[r] != 0].abs(), w0[r][w[r] == 0].abs()
        if len(kept) and len(gone):
            assert kept.min() >= gone.max()
    assert torch.equal(w[w != 0], w0[w != 0])  # survivors are untouched


def test_global_sparsity_is_exact_and_rows_may_differ():
    w0 = rand((20, 30))
    w0[0] *= 100  # a row of large weights survives whole under global pruning
    w = prune_(w0.clone(), 0.5, "global")
    assert int((w == 0).sum()) == 300
    assert (w[0] != 0).all()
    assert w0[w == 0].abs().max() <= w0[w != 0].abs().min()


def test_exact_count_with_ties():
    w = torch.ones(4, 10, dtype=torch.float16)
    prune_(w, 0.5, "row")
    assert ((w == 0).sum(dim=1) == 5).all()


def test_wanda_scores_weigh_magnitude_by_input_norm():
    x = rand((3, 16, 8))
    norms = activation_norms(x)
    assert torch.allclose(norms, x.reshape(-1, 8).norm(dim=0))
    w = rand((5, 8), 1)
    assert torch.allclose(wanda_scores(w, norms), w.abs() * norms)


def test_wanda_keeps_weights_on_loud_inputs_that_magnitude_would_drop():
    w = torch.tensor([[0.1, 1.0, 0.2, 2.0]])
    norms = torch.tensor([100.0, 1.0, 1.0, 1.0])  # input 0 is large: its small weight matters
    by_magnitude = prune_(w.clone(), 0.5, "row")
    by_wanda = prune_(w.clone(), 0.5, "row", act_norms=norms)
    assert by_magnitude[0, 0] == 0 and by_wanda[0, 0] != 0
    assert int((by_wanda == 0).sum()) == 2


@pytest.mark.parametrize("kw, match", [(dict(sparsity=1.2), "out of range"), (dict(sparsity=-0.1), "out of range"),
                                       (dict(sparsity=0.5, balance="col"), "balance"),
                                       (dict(sparsity=0.5, act_norms=torch.ones(3)), "input features")])
def test_bad_inputs_are_one_line_errors(kw, match):
    with pytest.raises(EdgewiseError, match=match):
        prune_(rand((4, 8)), **kw)
