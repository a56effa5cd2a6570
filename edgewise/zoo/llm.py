"""Decoder LLMs from `transformers` configs with random weights (nothing is downloaded).

The Hugging Face model is wrapped so that it takes token ids and returns logits: a plain
tensor in and out is what tracing, the planner and the runtime pass between stages. The
wrapper keeps the HF module as `lm`, so state_dict keys read `lm.<hf key>`.
"""
from __future__ import annotations

import torch
from torch import nn
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM


class CausalLM(nn.Module):
    def __init__(self, lm: nn.Module):
        super().__init__()
        self.lm = lm

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        # A full attention mask keeps transformers from inspecting the ids' values to guess
        # packed sequences, which would make the forward data-dependent.
        mask = torch.ones_like(input_ids)
        return self.lm(input_ids=input_ids, attention_mask=mask, use_cache=False).logits


def _causal_lm(lm: nn.Module, seq_len: int, vocab: int, device: str):
    ids = torch.randint(0, vocab, (1, seq_len), device=device)
    return CausalLM(lm).eval(), (ids,)


def gpt2(n_layer: int = 12, n_embd: int = 768, n_head: int = 12, seq_len: int = 32,
         device: str = "cpu"):
    """GPT-2 small (124M) by default; `device="meta"` builds it without allocating weights."""
    config = GPT2Config(n_layer=n_layer, n_embd=n_embd, n_head=n_head, use_cache=False)
    with torch.device(device):
        lm = GPT2LMHeadModel(config)
    return _causal_lm(lm, seq_len, config.vocab_size, device)


def gpt2_xl(seq_len: int = 32):
    """GPT-2 XL (1.5B: 48 blocks, d=1600) on the meta device: traceable and countable without
    allocating its 6 GB of weights. It cannot run; it can be inspected and planned."""
    return gpt2(n_layer=48, n_embd=1600, n_head=25, seq_len=seq_len, device="meta")


def llama(hidden_size: int = 512, layers: int = 4, heads: int = 8, kv_heads: int = 4,
          vocab: int = 8000, seq_len: int = 32, device: str = "cpu"):
    """A small Llama (RMSNorm, rotary embeddings, grouped-query attention, SwiGLU)."""
    config = LlamaConfig(hidden_size=hidden_size, intermediate_size=hidden_size * 8 // 3 // 64 * 64,
                         num_hidden_layers=layers, num_attention_heads=heads,
                         num_key_value_heads=kv_heads, vocab_size=vocab,
                         max_position_embeddings=max(seq_len, 128), use_cache=False)
    with torch.device(device):
        lm = LlamaForCausalLM(config)
    return _causal_lm(lm, seq_len, vocab, device)
