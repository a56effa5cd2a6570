"""Packed layers on disk: one safetensors file per layer, read back memory-mapped.

Reads go through the page cache (the GPU machines' virtual disks cannot do GPUDirect Storage):
the engine copies from the mapping into a pinned bounce buffer, then to the GPU. Each file holds
one uint8 tensor "packed", the layer's `LayerLayout` and a CRC-32 of the bytes in its metadata,
so a truncated or corrupted file is refused with one line instead of decoding garbage.
"""
from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import torch
from safetensors.torch import save

from edgewise.errors import EdgewiseError
from edgewise.files import write_atomic
from edgewise.offload.packing import LayerLayout

TENSOR = "packed"


def layer_path(directory: Path, index: int) -> Path:
    return Path(directory) / f"layer_{index:04d}.safetensors"


def _crc(buf: torch.Tensor) -> int:
    return zlib.crc32(memoryview(buf.numpy()))


def write_layer(path: Path, buf: torch.Tensor, layout: LayerLayout) -> None:
    """Write atomically: a crash leaves the old file or none, never half a file."""
    meta = {"layout": layout.to_json(), "crc32": str(_crc(buf))}
    write_atomic(path, save({TENSOR: buf.contiguous()}, metadata=meta))


def open_layer(path: Path) -> tuple[torch.Tensor, LayerLayout]:
    """Map a layer file read-only (nothing is read until used, except for the CRC check)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            (hlen,) = struct.unpack("<Q", f.read(8))
            if hlen > size - 8:
                raise ValueError(f"header of {hlen} bytes is longer than the file")
            header = json.loads(f.read(hlen))
        meta = header["__metadata__"]
        begin, end = header[TENSOR]["data_offsets"]
        layout = LayerLayout.from_json(meta["layout"])
        if 8 + hlen + end > size or end - begin != layout.nbytes:
            raise ValueError(f"data is {size - 8 - hlen} bytes, the header promises {end}")
        mapped = torch.from_file(str(path), shared=False, size=size, dtype=torch.uint8)
        buf = mapped[8 + hlen + begin: 8 + hlen + end]
        if _crc(buf) != int(meta["crc32"]):
            raise ValueError("CRC-32 of the data does not match the header")
    except (OSError, ValueError, KeyError, TypeError, struct.error, RuntimeError) as e:
        raise EdgewiseError(f"offload layer file {path} is unreadable ({e}): "
                            f"delete the folder and let the engine rewrite it") from None
    return buf, layout
