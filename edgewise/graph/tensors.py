"""The tensors inside nested args/outputs, and their sizes in bytes (fake and meta too)."""
from __future__ import annotations

from math import prod
from typing import Any

import torch
from torch.utils._pytree import tree_leaves


def tensors_in(x: Any) -> list[torch.Tensor]:
    return [t for t in tree_leaves(x) if isinstance(t, torch.Tensor)]


def nbytes(t: torch.Tensor) -> int:
    return prod(t.shape) * t.element_size()
