"""The fused Triton decoder for `codecs.bitmap`: unpack bits, prefix-sum, gather, store; one pass.

One program per format block: it reads its block's bitmap bytes and its start in `values`,
computes each set bit's rank with an in-register cumsum, gathers the values (contiguous, so the
loads coalesce) and writes the dense block (zeros where the bit is clear). The weight is moved as
same-size integers, so every dtype decodes bit for bit.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _decode_kernel(bitmap_ptr, starts_ptr, values_ptr, out_ptr, n, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    idx = pid * BLOCK + tl.arange(0, BLOCK)
    inside = idx < n
    byte = tl.load(bitmap_ptr + (idx >> 3), mask=inside, other=0).to(tl.int32)
    bit = (byte >> (idx & 7)) & 1
    rank = tl.cumsum(bit, axis=0) - bit  # exclusive: values before this one in the block
    start = tl.load(starts_ptr + pid)
    v = tl.load(values_ptr + start + rank, mask=bit != 0, other=0)
    tl.store(out_ptr + idx, v, mask=inside)


def decode_into(flat_out: torch.Tensor, bitmap: torch.Tensor, starts: torch.Tensor,
                values: torch.Tensor, block: int) -> None:
    """Decode into the contiguous 1-D integer view `flat_out` on the current CUDA stream."""
    n = flat_out.numel()
    grid = (starts.numel(),)
    _decode_kernel[grid](bitmap, starts, values, flat_out, n, BLOCK=block, num_warps=4)
