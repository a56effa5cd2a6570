"""Offloaded inference for `transformers` causal LMs: decoder layers stream host/disk -> GPU.

Every decoder layer that does not fit in the GPU budget lives in host memory as one packed buffer
(pinned once, up front) or in a memory-mapped file. Before a layer runs, its buffer is copied to
a GPU staging slot on a side stream, decoded (bitmap codec) on a second side stream into
preallocated weight tensors, and the layer's parameters are pointed at them. Two slots alternate,
so while layer i computes, layer i+1 is being copied and decoded: the link never waits for
compute, and compute waits only for the link. The same code runs on the CPU without streams.

Ordering between the three streams is kept by CUDA events per slot:
  copy   waits `staging_free` (last decode of this slot read its staging buffer; dense: compute),
  decode waits `copied` and `weights_free` (the layer that last ran from this slot finished),
  compute waits `ready`.
"""
from __future__ import annotations

import functools
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from edgewise.codecs.bitmap import DEFAULT_BLOCK
from edgewise.errors import EdgewiseError
from edgewise.offload import disk
from edgewise.offload.packing import (
    Codec,
    LayerLayout,
    pack_layer,
    raw_views,
    unpack_into,
)

Storage = Literal["host", "disk"]
LAYER_PATHS = ("model.layers", "model.decoder.layers", "transformer.h", "gpt_neox.layers")
SLOTS = 2  # double buffering: one slot computes while the other fills


def decoder_layers(model: nn.Module) -> tuple[str, nn.ModuleList]:
    for path in LAYER_PATHS:
        obj = model
        for part in path.split("."):
            obj = getattr(obj, part, None)
        if isinstance(obj, nn.ModuleList):
            return path, obj
    raise EdgewiseError(f"model {type(model).__name__} has no decoder layer list: "
                        f"expected one of {', '.join(LAYER_PATHS)}")


def _nbytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def _human(n: int) -> str:
    unit = next(u for u, k in (("GiB", 30), ("MiB", 20), ("KiB", 10), ("B", 0)) if n >= 1 << k or k == 0)
    return f"{n / (1 << dict(GiB=30, MiB=20, KiB=10, B=0)[unit]):.2f}{unit}"


@dataclass
class _Slot:
    staging: torch.Tensor
    weights: dict[str, torch.Tensor]
    bounce: torch.Tensor | None = None  # pinned host buffer for disk reads
    copied: torch.cuda.Event | None = None
    ready: torch.cuda.Event | None = None
    staging_free: torch.cuda.Event | None = None
    weights_free: torch.cuda.Event | None = None


@dataclass
class EngineStats:
    """What the engine holds where, for the report."""

    layers: int
    resident_layers: int
    streamed_layers: int
    codec: str
    storage: str
    streamed_bytes_per_pass: int  # bytes over the link for one forward pass
    streamed_dense_bytes_per_pass: int  # the same layers' dense size
    pinned_bytes: int
    gpu_weight_bytes: int
    resident: list[int] = field(default_factory=list)


class OffloadEngine:
    """Attach to `model` (in place) so that `model(...)` / `model.generate(...)` stream layers.

    `gpu_memory_bytes` bounds weights kept on the device (non-layer weights, the two slots,
    resident layers) plus `reserve_bytes` for activations and the KV cache (default: 512 MiB or
    a tenth of the budget, the smaller); None keeps all layers that fit in the device's free
    memory. `resident_layers` forces how many stay resident (the first ones).
    """

    def __init__(self, model: nn.Module, device: str | torch.device = "cuda", *,
                 codec: Codec = "dense", storage: Storage = "host", disk_dir: str | Path | None = None,
                 gpu_memory_bytes: int | None = None, resident_layers: int | None = None,
                 block: int = DEFAULT_BLOCK, reserve_bytes: int | None = None):
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        if self.cuda and not torch.cuda.is_available():
            raise EdgewiseError("offload device cuda is not available on this machine: use device cpu")
        self.codec, self.storage = codec, storage
        self.model = model.eval()
        self.prefix, self.layers = decoder_layers(model)
        self._move_non_layer_state()

        n = len(self.layers)
        layer_bytes = [_nbytes(layer.parameters()) for layer in self.layers]
        fixed = _nbytes(p for name, p in model.named_parameters() if not name.startswith(self.prefix + "."))
        slot_bytes = SLOTS * max(layer_bytes) * (2 if codec == "bitmap" else 1)  # bitmap: staging + weights
        if resident_layers is None:
            budget = gpu_memory_bytes if gpu_memory_bytes is not None else self._free_device_bytes()
            if reserve_bytes is None:  # activations and KV cache of batch-1 decoding
                reserve_bytes = min(512 << 20, budget // 10)
            spare = budget - reserve_bytes - fixed
            if spare >= sum(layer_bytes):
                resident_layers = n
            elif spare - slot_bytes < 0:
                raise EdgewiseError(
                    f"--gpu-memory {_human(budget)} is too small: this model needs at least "
                    f"{_human(fixed + slot_bytes + reserve_bytes)} to stream its layers")
            else:
                resident_layers = min(n - 1, int((spare - slot_bytes) // max(layer_bytes)))
        self.resident = list(range(min(resident_layers, n)))
        self.streamed = [i for i in range(n) if i not in self.resident]
        for i in self.resident:
            self.layers[i].to(self.device)

        self._host_params = {i: dict(self.layers[i].named_parameters()) for i in self.streamed}
        self._originals = {i: {k: p.data for k, p in ps.items()} for i, ps in self._host_params.items()}
        self._buffers: dict[int, torch.Tensor] = {}
        self._layouts: dict[int, LayerLayout] = {}
        self._pack_streamed(block, disk_dir)
        self._build_slots()
        self._where: dict[int, int] = {}  # streamed layer -> slot that holds (or is receiving) it
        self._next_slot = 0
        self._hooks = []
        for i in self.streamed:
            layer = self.layers[i]
            self._hooks.append(layer.register_forward_pre_hook(functools.partial(self._before, i)))
            self._hooks.append(layer.register_forward_hook(functools.partial(self._after, i)))

    # ---- set-up -----------------------------------------------------------------------------
    def _move_non_layer_state(self) -> None:
        """Embeddings, final norm, head and every buffer (rotary tables) live on the device."""
        layer_modules = {id(m) for m in self.layers.modules()}
        for module in self.model.modules():
            if id(module) in layer_modules:
                for key, b in module._buffers.items():
                    if b is not None:
                        module._buffers[key] = b.to(self.device)
                continue
            for key, p in module._parameters.items():
                if p is not None:
                    p.data = p.data.to(self.device)
            for key, b in module._buffers.items():
                if b is not None:
                    module._buffers[key] = b.to(self.device)

    def _free_device_bytes(self) -> int:
        if self.cuda:
            return torch.cuda.mem_get_info(self.device)[0]
        return 1 << 62  # the CPU "device" holds everything

    def _pack_streamed(self, block: int, disk_dir: str | Path | None) -> None:
        pin = self.cuda and self.storage == "host"
        work = self.device if self.cuda else torch.device("cpu")
        if self.storage == "disk":
            self._tmpdir = None
            if disk_dir is None:
                self._tmpdir = tempfile.TemporaryDirectory(prefix="edgewise-offload-")
                disk_dir = self._tmpdir.name
            disk_dir = Path(disk_dir)
        for i in self.streamed:
            params = {k: p.detach() for k, p in self._host_params[i].items()}
            buf, layout = pack_layer(params, self.codec, block, work, pin=pin)
            if self.storage == "disk":
                path = disk.layer_path(disk_dir, i)
                disk.write_layer(path, buf, layout)
                del buf
                buf, layout = disk.open_layer(path)
            self._buffers[i], self._layouts[i] = buf, layout
        shapes = {tuple(self._layouts[i].shapes()) for i in self.streamed}
        if len(shapes) > 1:
            raise EdgewiseError("offload needs every streamed decoder layer to have the same tensors "
                                "(names, shapes, dtypes): this model's layers differ")

    def _build_slots(self) -> None:
        self.slots: list[_Slot] = []
        if not self.streamed:
            return
        layout = self._layouts[self.streamed[0]]
        staging_bytes = max(self._layouts[i].nbytes for i in self.streamed)
        bounce = self.cuda and self.storage == "disk"
        for _ in range(min(SLOTS, len(self.streamed))):
            staging = torch.empty(staging_bytes, dtype=torch.uint8, device=self.device)
            if self.codec == "dense":  # the layer computes straight out of its staging bytes
                weights = raw_views(staging, layout)
            else:
                weights = {p.name: torch.empty(p.shape, dtype=getattr(torch, p.dtype), device=self.device)
                           for p in layout.params}
            slot = _Slot(staging, weights)
            if bounce:
                slot.bounce = torch.empty(staging_bytes, dtype=torch.uint8, pin_memory=True)
            if self.cuda:
                slot.copied, slot.ready = torch.cuda.Event(), torch.cuda.Event()
                slot.staging_free, slot.weights_free = torch.cuda.Event(), torch.cuda.Event()
            self.slots.append(slot)
        if self.cuda:
            self.copy_stream = torch.cuda.Stream(self.device)
            self.decode_stream = torch.cuda.Stream(self.device)

    # ---- streaming --------------------------------------------------------------------------
    def _next_streamed(self, i: int) -> int:
        k = self.streamed.index(i)
        return self.streamed[(k + 1) % len(self.streamed)]

    def _load(self, j: int) -> None:
        """Start moving streamed layer j into the next slot (asynchronous on CUDA)."""
        s = self._next_slot
        self._next_slot = (s + 1) % len(self.slots)
        self._where = {k: v for k, v in self._where.items() if v != s}
        self._where[j] = s
        slot, src, layout = self.slots[s], self._buffers[j], self._layouts[j]
        staging = slot.staging[:src.numel()]
        if not self.cuda:
            staging.copy_(src)
            if self.codec == "bitmap":
                unpack_into(staging, layout, slot.weights)
            return
        with torch.cuda.stream(self.copy_stream):
            self.copy_stream.wait_event(slot.staging_free if self.codec == "bitmap" else slot.weights_free)
            if slot.bounce is not None:  # page cache -> pinned bounce, once its last copy is done
                slot.copied.synchronize()
                slot.bounce[:src.numel()].copy_(src)
                src = slot.bounce[:src.numel()]
            staging.copy_(src, non_blocking=True)
            slot.copied.record(self.copy_stream)
        if self.codec == "dense":
            slot.ready.record(self.copy_stream)
            return
        with torch.cuda.stream(self.decode_stream):
            self.decode_stream.wait_event(slot.copied)
            self.decode_stream.wait_event(slot.weights_free)
            unpack_into(staging, layout, slot.weights)
            slot.staging_free.record(self.decode_stream)
            slot.ready.record(self.decode_stream)

    def _before(self, i: int, module: nn.Module, args) -> None:
        if i not in self._where:
            self._load(i)
        nxt = self._next_streamed(i)
        if nxt not in self._where:
            self._load(nxt)  # prefetch: copy and decode the next layer while this one computes
        slot = self.slots[self._where[i]]
        if self.cuda:
            torch.cuda.current_stream(self.device).wait_event(slot.ready)
        for name, p in self._host_params[i].items():
            p.data = slot.weights[name]

    def _after(self, i: int, module: nn.Module, args, output) -> None:
        slot = self.slots[self._where[i]]
        if self.cuda:
            slot.weights_free.record(torch.cuda.current_stream(self.device))
        for name, p in self._host_params[i].items():
            p.data = self._originals[i][name]

    # ---- reporting --------------------------------------------------------------------------
    def stats(self) -> EngineStats:
        pinned = sum(b.numel() for b in self._buffers.values() if self.cuda and b.is_pinned())
        pinned += sum(s.bounce.numel() for s in self.slots if s.bounce is not None)
        gpu = _nbytes(s.staging for s in self.slots)
        if self.codec == "bitmap":
            gpu += sum(_nbytes(s.weights.values()) for s in self.slots)
        gpu += sum(_nbytes(self.layers[i].parameters()) for i in self.resident)
        return EngineStats(
            layers=len(self.layers), resident_layers=len(self.resident), streamed_layers=len(self.streamed),
            codec=self.codec, storage=self.storage,
            streamed_bytes_per_pass=sum(self._layouts[i].nbytes for i in self.streamed),
            streamed_dense_bytes_per_pass=sum(self._layouts[i].dense_nbytes for i in self.streamed),
            pinned_bytes=pinned, gpu_weight_bytes=gpu, resident=list(self.resident))

    def close(self) -> None:
        """Detach the hooks; streamed layers keep their original host weights."""
        for h in self._hooks:
            h.remove()
        self._hooks.clear()
