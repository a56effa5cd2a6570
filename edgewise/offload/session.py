"""One offloaded generation end to end: load, prune, attach the engine, decode, measure.

This is what `edgewise offload` calls; it validates every input before building anything heavy.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from edgewise.errors import EdgewiseError
from edgewise.offload.engine import OffloadEngine, Storage, decoder_layers
from edgewise.offload.measure import greedy, h2d_GBps
from edgewise.offload.models import SHAPES, load_model, prune_decoder_
from edgewise.offload.sizes import parse_bytes
from edgewise.proc import rss_bytes


@dataclass
class OffloadRequest:
    model: str
    gpu_memory: str = "8GiB"
    sparsity: float = 0.0
    prompt: str = "The edge is where the data is"
    layers: int | None = None
    new_tokens: int = 32
    storage: Storage = "host"
    disk_dir: Path | None = None
    balance: str = "row"
    device: str = "auto"
    seed: int = 0


@dataclass
class OffloadReport:
    model: str
    device: str
    codec: str
    sparsity: float
    storage: str
    layers: int
    resident_layers: int
    streamed_layers: int
    generated: list[int]
    text: str | None
    tokens_per_s: float
    s_per_token: float  # mean over decode steps (prefill excluded)
    s_per_token_median: float
    wire_bytes_per_token: int
    wire_GBps: float  # bytes actually sent over the link per second
    effective_GBps: float  # dense-equivalent bytes per second (comparable across codecs)
    pinned_h2d_GBps: float | None  # measured in this process: the PCIe bound
    frac_of_pinned: float | None
    pinned_bytes: int
    peak_gpu_bytes: int | None
    host_rss_bytes: int
    data: str

    def to_dict(self) -> dict:
        return asdict(self)


def _validate(req: OffloadRequest) -> tuple[int, torch.device]:
    budget = parse_bytes(req.gpu_memory, "--gpu-memory")
    if not 0.0 <= req.sparsity < 1.0:
        raise EdgewiseError(f"--sparsity {req.sparsity} is out of range: use a fraction in [0, 1)")
    if req.storage not in ("host", "disk"):
        raise EdgewiseError(f"--storage {req.storage!r} is unknown: use host or disk")
    if req.balance not in ("row", "global"):
        raise EdgewiseError(f"--balance {req.balance!r} is unknown: use row or global")
    if req.new_tokens < 1:
        raise EdgewiseError(f"--new-tokens {req.new_tokens} is invalid: use 1 or more")
    if not req.prompt:
        raise EdgewiseError("--prompt is empty: give at least one character")
    if req.model not in SHAPES and not Path(req.model).is_dir():
        raise EdgewiseError(f"model {req.model!r} is unknown: use one of {', '.join(SHAPES)} "
                            f"or a local checkpoint folder")
    if req.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    elif req.device in ("cpu", "cuda"):
        device = torch.device(req.device)
    else:
        raise EdgewiseError(f"--device {req.device!r} is unknown: use auto, cpu or cuda")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise EdgewiseError("--device cuda: no CUDA GPU on this machine; use --device cpu")
    return budget, device


def _tokenize(req: OffloadRequest, vocab: int):
    """A checkpoint's own tokenizer when it has one; else prompt bytes mapped into the vocabulary."""
    if Path(req.model).is_dir():
        try:
            from transformers import AutoTokenizer
            tok = AutoTokenizer.from_pretrained(req.model, local_files_only=True)
            return tok(req.prompt, return_tensors="pt").input_ids, tok
        except (OSError, ValueError):
            pass
    ids = [3 + b % (vocab - 3) for b in req.prompt.encode()]
    return torch.tensor([ids]), None


def run_offload(req: OffloadRequest) -> OffloadReport:
    budget, device = _validate(req)
    cuda = device.type == "cuda"
    dtype = torch.float16 if cuda else torch.float32  # CPU matmuls in fp16 are slow and partial
    pinned_bw = h2d_GBps(True) if cuda else None
    model = load_model(req.model, req.layers, dtype, req.seed)
    _, layers = decoder_layers(model)
    if req.sparsity > 0:
        prune_decoder_(model, layers, req.sparsity, req.balance, device)
    codec = "bitmap" if req.sparsity > 0 else "dense"
    engine = OffloadEngine(model, device, codec=codec, storage=req.storage, disk_dir=req.disk_dir,
                           gpu_memory_bytes=budget)
    ids, tok = _tokenize(req, model.config.vocab_size)
    ids = ids.to(device)
    greedy(model, ids, 2)  # warm-up: prefill and one decode step compile and allocate what they need
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    gen = greedy(model, ids, req.new_tokens)
    st = engine.stats()
    spt = gen.s_per_token if gen.step_s else gen.prefill_s
    wire = st.streamed_bytes_per_pass / spt / 1e9
    return OffloadReport(
        model=req.model, device=torch.cuda.get_device_name(device) if cuda else "cpu", codec=codec,
        sparsity=req.sparsity, storage=req.storage, layers=st.layers, resident_layers=st.resident_layers,
        streamed_layers=st.streamed_layers, generated=gen.tokens,
        text=tok.decode(gen.tokens) if tok is not None else None, tokens_per_s=1 / spt, s_per_token=spt,
        s_per_token_median=gen.s_per_token_median if gen.step_s else spt,
        wire_bytes_per_token=st.streamed_bytes_per_pass, wire_GBps=wire,
        effective_GBps=st.streamed_dense_bytes_per_pass / spt / 1e9, pinned_h2d_GBps=pinned_bw,
        frac_of_pinned=wire / pinned_bw if pinned_bw else None, pinned_bytes=st.pinned_bytes,
        peak_gpu_bytes=torch.cuda.max_memory_allocated() if cuda else None, host_rss_bytes=rss_bytes(),
        data="random weights" if req.model in SHAPES else "checkpoint weights")
