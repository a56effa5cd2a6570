"""Bitmap sparse format for pruned weights (Endor): one bit per position plus the non-zero values.

Layout, chosen so a GPU kernel decodes it in one pass with no search:
- `bitmap`: uint8, bit `i % 8` of byte `i // 8` says whether flat element `i` is non-zero
  (little-endian bit order; padded with zero bits to a whole number of blocks);
- `values`: the non-zero elements in flat order, same dtype as the weight;
- `block_starts`: int32, for every block of `block` flat elements the index in `values` of its
  first non-zero (an exclusive prefix sum of per-block popcounts, computed at encode time), so
  each GPU program knows where its values start without scanning the blocks before it.

"Non-zero" is decided on the bit pattern, not the float value: -0.0 and NaN survive the round
trip, so `decode(encode(w))` equals `w` bit for bit for every dtype.
At sparsity s an fp16 weight costs 1 + 16 * (1 - s) bits, plus 32 bits per block for the starts.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from edgewise.errors import EdgewiseError

DEFAULT_BLOCK = 1024
# Same-size integer dtypes: the codec moves bit patterns, never float values.
_INT_VIEW = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


@dataclass(frozen=True)
class BitmapTensor:
    """An encoded weight: everything needed to rebuild it exactly."""

    shape: tuple[int, ...]
    dtype: torch.dtype
    block: int
    bitmap: torch.Tensor  # uint8, numel = ceil(n / block) * block / 8
    block_starts: torch.Tensor  # int32, one per block
    values: torch.Tensor  # dtype, the non-zeros in flat order

    @property
    def numel(self) -> int:
        return int(torch.Size(self.shape).numel())

    @property
    def nbytes(self) -> int:
        """Bytes on the wire: bitmap + block starts + values."""
        return sum(t.numel() * t.element_size() for t in (self.bitmap, self.block_starts, self.values))

    @property
    def dense_nbytes(self) -> int:
        return self.numel * self.dtype.itemsize


def _int_view(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(-1).view(_INT_VIEW[t.element_size()])


def encode(w: torch.Tensor, block: int = DEFAULT_BLOCK) -> BitmapTensor:
    """Encode `w` (any shape, any dtype) on the device it lives on."""
    if block <= 0 or block % 8:
        raise EdgewiseError(f"bitmap block={block} is invalid: use a positive multiple of 8")
    if w.element_size() not in _INT_VIEW:
        raise EdgewiseError(f"bitmap dtype {w.dtype} is not supported: use a 1, 2, 4 or 8-byte dtype")
    flat = _int_view(w.contiguous())
    n = flat.numel()
    if n >= 2**31:
        raise EdgewiseError(f"bitmap tensor of {n} elements is too large: split it below 2**31 elements")
    nblocks = -(-n // block)
    mask = torch.zeros(nblocks * block, dtype=torch.bool, device=w.device)
    mask[:n] = flat != 0
    bits = mask.view(-1, 8).to(torch.uint8)
    bitmap = bits[:, 0].clone()
    for b in range(1, 8):
        bitmap |= bits[:, b] << b
    counts = mask.view(nblocks, block).sum(dim=1, dtype=torch.int64)
    starts = (torch.cumsum(counts, 0) - counts).to(torch.int32)
    values = flat[mask[:n]].view(w.dtype)
    return BitmapTensor(tuple(w.shape), w.dtype, block, bitmap, starts, values)


def decode(enc: BitmapTensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """Rebuild the dense tensor on the encoded tensors' device, into `out` when given.

    On CUDA this is one fused Triton kernel; elsewhere plain torch ops do the same work.
    """
    if out is None:
        out = torch.empty(enc.shape, dtype=enc.dtype, device=enc.values.device)
    elif tuple(out.shape) != enc.shape or out.dtype != enc.dtype or not out.is_contiguous():
        raise EdgewiseError(f"bitmap decode out={tuple(out.shape)} {out.dtype} does not match "
                            f"the encoded {enc.shape} {enc.dtype} (contiguous)")
    flat_out = _int_view(out)
    if out.is_cuda:
        from edgewise.codecs.bitmap_kernel import decode_into
        decode_into(flat_out, enc.bitmap, enc.block_starts, _int_view(enc.values), enc.block)
    else:
        _decode_torch(flat_out, enc.bitmap, _int_view(enc.values))
    return out


def _decode_torch(flat_out: torch.Tensor, bitmap: torch.Tensor, values: torch.Tensor) -> None:
    shifts = torch.arange(8, dtype=torch.uint8, device=bitmap.device)
    mask = ((bitmap.unsqueeze(1) >> shifts) & 1).view(-1)[: flat_out.numel()].bool()
    flat_out.zero_()
    flat_out[mask] = values
