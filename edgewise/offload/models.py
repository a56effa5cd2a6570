"""Causal LMs for offloading: shapes of real LLMs built with random weights (no downloads).

Models are built on the `meta` device and materialised straight into host memory, then filled
with N(0, 0.02) from seeded generators in parallel chunks (a 1.7 GB Llama-2-70B layer fills in
about a second on 16 cores). Norm weights are 1 and biases 0. A local Hugging Face checkpoint
directory loads the same way for users who have real weights.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from torch import nn
from transformers import AutoModelForCausalLM, LlamaConfig, OPTConfig, PretrainedConfig

from edgewise.codecs.prune import Balance, prune_
from edgewise.errors import EdgewiseError

SHAPES: dict[str, tuple[type[PretrainedConfig], dict]] = {
    "llama2-70b-shape": (LlamaConfig, dict(hidden_size=8192, intermediate_size=28672, num_attention_heads=64,
                                           num_key_value_heads=8, vocab_size=32000, num_hidden_layers=80,
                                           max_position_embeddings=4096, rms_norm_eps=1e-5)),
    "opt-30b": (OPTConfig, dict(hidden_size=7168, ffn_dim=28672, num_attention_heads=56, num_hidden_layers=48,
                                vocab_size=50272, max_position_embeddings=2048, word_embed_proj_dim=7168)),
    "tiny-llama": (LlamaConfig, dict(hidden_size=128, intermediate_size=448, num_attention_heads=8,
                                     num_key_value_heads=2, vocab_size=1000, num_hidden_layers=4,
                                     max_position_embeddings=512, rms_norm_eps=1e-5)),
    "tiny-opt": (OPTConfig, dict(hidden_size=128, ffn_dim=512, num_attention_heads=4, num_hidden_layers=4,
                                 vocab_size=1000, max_position_embeddings=512, word_embed_proj_dim=128)),
}
CHUNK = 1 << 24  # elements per independently seeded chunk: deterministic whatever the thread count


def _fill(flat: torch.Tensor, seed: int, start: int) -> None:
    g = torch.Generator().manual_seed(seed * 1_000_003 + start // CHUNK)
    flat[start:start + CHUNK].normal_(0.0, 0.02, generator=g)


def build_random(name: str, layers: int | None = None, dtype: torch.dtype = torch.float16,
                 seed: int = 0, threads: int = 16) -> nn.Module:
    """A named shape (see SHAPES) with random weights, optionally truncated to `layers` layers."""
    if name not in SHAPES:
        raise EdgewiseError(f"model {name!r} is unknown: use one of {', '.join(SHAPES)} or a local checkpoint folder")
    cls, kw = SHAPES[name]
    kw = dict(kw)
    if layers is not None:
        if layers < 1:
            raise EdgewiseError(f"--layers {layers} is invalid: use a positive number of decoder layers")
        kw["num_hidden_layers"] = layers
    cfg = cls(tie_word_embeddings=False, bos_token_id=None, eos_token_id=None, pad_token_id=0, **kw)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg, dtype=dtype)
    model = model.to_empty(device="cpu").eval()
    jobs = []
    for i, (pname, p) in enumerate(model.named_parameters()):
        p.requires_grad_(False)
        if p.dim() == 1:
            p.fill_(0.0 if pname.endswith("bias") else 1.0)
        else:
            flat = p.data.view(-1)
            jobs += [(flat, seed + i, c) for c in range(0, flat.numel(), CHUNK)]
    with ThreadPoolExecutor(threads) as ex:  # torch fills release the GIL
        list(ex.map(lambda j: _fill(*j), jobs))
    _rebuild_rotary(model, cfg)
    return model


def _rebuild_rotary(model: nn.Module, cfg: PretrainedConfig) -> None:
    """`to_empty` leaves computed buffers (rotary inverse frequencies) uninitialised: rebuild them."""
    for name, module in list(model.named_modules()):
        if type(module).__name__.endswith("RotaryEmbedding"):
            parent = model.get_submodule(name.rpartition(".")[0]) if "." in name else model
            setattr(parent, name.rpartition(".")[2], type(module)(config=cfg))


def load_checkpoint(path: str | Path, dtype: torch.dtype = torch.float16) -> nn.Module:
    """A local Hugging Face checkpoint folder (never downloads)."""
    try:
        return AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype, local_files_only=True).eval()
    except (OSError, ValueError) as e:
        raise EdgewiseError(f"checkpoint folder {path} cannot be loaded ({str(e).splitlines()[0]})") from None


def load_model(name: str, layers: int | None = None, dtype: torch.dtype = torch.float16, seed: int = 0) -> nn.Module:
    """A named random-weight shape, or a local checkpoint folder."""
    if name in SHAPES:
        return build_random(name, layers, dtype, seed)
    if Path(name).is_dir():
        return load_checkpoint(name, dtype)
    raise EdgewiseError(f"model {name!r} is unknown: use one of {', '.join(SHAPES)} or a local checkpoint folder")


def prune_decoder_(model: nn.Module, layers: nn.ModuleList, sparsity: float, balance: Balance = "row",
                   work_device: torch.device | str = "cpu") -> None:
    """Magnitude-prune every 2-D weight of the decoder layers in place (pruned on `work_device`)."""
    with torch.no_grad():
        for layer in layers:
            for p in layer.parameters():
                if p.dim() == 2:
                    w = p.data.to(work_device)
                    prune_(w, sparsity, balance)
                    p.data.copy_(w)
