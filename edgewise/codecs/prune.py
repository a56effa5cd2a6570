"""Unstructured pruning of a weight matrix at a chosen sparsity, by magnitude or Wanda score.

A score says how much a weight matters; the lowest-scoring fraction `sparsity` is zeroed, either
in every row alike ("row": each output keeps the same number of weights, as Wanda does) or over
the whole matrix ("global"). Wanda (Sun et al., 2023) scores |W_ij| * ||X_j||_2, the weight's
magnitude times the norm of the input feature it multiplies over calibration activations.
"""
from __future__ import annotations

from typing import Literal

import torch

from edgewise.errors import EdgewiseError

Balance = Literal["row", "global"]
ROWS_PER_CHUNK = 2048  # bounds the float32 score copy for 8192 x 28672 matrices


def magnitude_scores(w: torch.Tensor) -> torch.Tensor:
    return w.float().abs()


def activation_norms(x: torch.Tensor) -> torch.Tensor:
    """||X_j||_2 per input feature j over all tokens of calibration activations (..., in)."""
    return x.reshape(-1, x.shape[-1]).float().norm(dim=0)


def wanda_scores(w: torch.Tensor, act_norms: torch.Tensor) -> torch.Tensor:
    if act_norms.shape != (w.shape[-1],):
        raise EdgewiseError(f"wanda activation norms of shape {tuple(act_norms.shape)} do not match "
                            f"the weight's {w.shape[-1]} input features")
    return w.float().abs() * act_norms.to(w.device, torch.float32)


def _check(sparsity: float, balance: str) -> None:
    if not 0.0 <= sparsity <= 1.0:
        raise EdgewiseError(f"sparsity {sparsity} is out of range: use a fraction in [0, 1]")
    if balance not in ("row", "global"):
        raise EdgewiseError(f"balance {balance!r} is unknown: use 'row' or 'global'")


def prune_(w: torch.Tensor, sparsity: float, balance: Balance = "row",
           act_norms: torch.Tensor | None = None) -> torch.Tensor:
    """Zero the lowest-scoring `sparsity` of the 2-D `w` in place (Wanda when `act_norms` given).

    Exactly round(sparsity * in) weights are zeroed per row ("row"), or round(sparsity * numel)
    over the matrix ("global"); ties are broken by position, so the count is exact.
    """
    _check(sparsity, balance)
    if w.dim() != 2:
        raise EdgewiseError(f"prune expects a 2-D weight, got shape {tuple(w.shape)}")

    def score(rows: slice) -> torch.Tensor:
        blk = w[rows]
        return magnitude_scores(blk) if act_norms is None else wanda_scores(blk, act_norms)

    if balance == "row":
        k = round(w.shape[1] * sparsity)
        if k == 0:
            return w
        for r in range(0, w.shape[0], ROWS_PER_CHUNK):
            rows = slice(r, r + ROWS_PER_CHUNK)
            idx = torch.topk(score(rows), k, dim=1, largest=False, sorted=False).indices
            w[rows].scatter_(1, idx, 0)
        return w
    k = round(w.numel() * sparsity)
    if k == 0:
        return w
    idx = torch.topk(score(slice(None)).view(-1), k, largest=False, sorted=False).indices
    w.view(-1)[idx] = 0
    return w
