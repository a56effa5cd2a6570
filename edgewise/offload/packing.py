"""One flat byte buffer per decoder layer: every tensor of the layer, dense or bitmap-encoded.

Streaming one buffer per layer means one large host-to-GPU copy per layer (the link's best case)
instead of one small copy per tensor. `LayerLayout` says where each tensor's pieces sit, so the
GPU side can view them out of its staging buffer without copying.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Literal

import torch

from edgewise.codecs import bitmap

Codec = Literal["dense", "bitmap"]
ALIGN = 64  # every piece starts on a 64-byte boundary: aligned views and full-width GPU loads


# Plain dataclasses, not pydantic: the engine must import on GPU machines that lack pydantic.
@dataclass(frozen=True)
class Span:
    offset: int
    nbytes: int


@dataclass
class PackedParam:
    name: str
    shape: tuple[int, ...]
    dtype: str
    raw: Span | None = None  # dense bytes, or
    block: int | None = None  # bitmap pieces
    bitmap: Span | None = None
    starts: Span | None = None
    values: Span | None = None


@dataclass
class LayerLayout:
    codec: Codec
    nbytes: int
    dense_nbytes: int
    params: list[PackedParam] = field(default_factory=list)

    def shapes(self) -> list[tuple[str, tuple[int, ...], str]]:
        return [(p.name, p.shape, p.dtype) for p in self.params]

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "LayerLayout":
        """Parse a layout written by `to_json`; raises ValueError/KeyError/TypeError if malformed."""
        d = json.loads(text)
        spans = ("raw", "bitmap", "starts", "values")
        params = [PackedParam(**{**p, "shape": tuple(p["shape"]),
                                 **{k: Span(**p[k]) if p.get(k) else None for k in spans}})
                  for p in d["params"]]
        if d["codec"] not in ("dense", "bitmap"):
            raise ValueError(f"codec {d['codec']!r}")
        return cls(codec=d["codec"], nbytes=int(d["nbytes"]), dense_nbytes=int(d["dense_nbytes"]), params=params)


def _dtype(name: str) -> torch.dtype:
    return getattr(torch, name)


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _as_bytes(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous().reshape(-1).view(torch.uint8)


def pack_layer(params: dict[str, torch.Tensor], codec: Codec, block: int = bitmap.DEFAULT_BLOCK,
               work_device: torch.device | str = "cpu", pin: bool = False) -> tuple[torch.Tensor, LayerLayout]:
    """Pack a layer's tensors into one uint8 CPU buffer (pinned when `pin`).

    With codec "bitmap", 2-D tensors (the weight matrices) are bitmap-encoded on `work_device`
    (the GPU encodes an 8192 x 28672 matrix in milliseconds); 1-D ones (norms, biases) stay raw.
    """
    pieces: list[torch.Tensor] = []
    entries: list[PackedParam] = []
    offset = 0

    def place(t: torch.Tensor) -> Span:
        nonlocal offset
        b = _as_bytes(t).cpu()
        span = Span(offset=offset, nbytes=b.numel())
        pieces.append(b)
        offset += -(-b.numel() // ALIGN) * ALIGN
        return span

    dense = 0
    for name, t in params.items():
        dense += t.numel() * t.element_size()
        entry = PackedParam(name=name, shape=tuple(t.shape), dtype=_dtype_name(t.dtype))
        if codec == "bitmap" and t.dim() == 2:
            enc = bitmap.encode(t.to(work_device), block)
            entry.block = block
            entry.bitmap, entry.starts, entry.values = place(enc.bitmap), place(enc.block_starts), place(enc.values)
        else:
            entry.raw = place(t)
        entries.append(entry)
    buf = torch.zeros(offset, dtype=torch.uint8, pin_memory=pin)
    cursor = 0
    for entry in entries:
        for span in (entry.raw, entry.bitmap, entry.starts, entry.values):
            if span is not None:
                buf[span.offset:span.offset + span.nbytes].copy_(pieces[cursor])
                cursor += 1
    return buf, LayerLayout(codec=codec, nbytes=offset, dense_nbytes=dense, params=entries)


def _view(buf: torch.Tensor, span: Span, dtype: torch.dtype) -> torch.Tensor:
    return buf[span.offset:span.offset + span.nbytes].view(dtype)


def raw_views(buf: torch.Tensor, layout: LayerLayout) -> dict[str, torch.Tensor]:
    """The raw (unencoded) tensors of a packed layer, as views into `buf` (on any device)."""
    return {p.name: _view(buf, p.raw, _dtype(p.dtype)).view(p.shape) for p in layout.params if p.raw}


def encoded_views(buf: torch.Tensor, layout: LayerLayout) -> dict[str, bitmap.BitmapTensor]:
    """The bitmap-encoded tensors of a packed layer, as views into `buf` (on any device)."""
    out = {}
    for p in layout.params:
        if p.bitmap is not None:
            dtype = _dtype(p.dtype)
            out[p.name] = bitmap.BitmapTensor(p.shape, dtype, p.block, _view(buf, p.bitmap, torch.uint8),
                                              _view(buf, p.starts, torch.int32), _view(buf, p.values, dtype))
    return out


def unpack_into(buf: torch.Tensor, layout: LayerLayout, out: dict[str, torch.Tensor]) -> None:
    """Write every tensor of the packed layer in `buf` into the same-named dense tensor of `out`."""
    for name, t in raw_views(buf, layout).items():
        out[name].copy_(t, non_blocking=True)
    for name, enc in encoded_views(buf, layout).items():
        bitmap.decode(enc, out=out[name])
