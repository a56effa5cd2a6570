"""Timing greedy generation per decode step, the host-to-GPU link, and memory use."""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch
from torch import nn
from transformers import StoppingCriteria, StoppingCriteriaList


@dataclass
class Generation:
    tokens: list[int]
    first_logits: torch.Tensor  # logits of the first generated token (CPU), for bitwise comparison
    prefill_s: float
    step_s: list[float]  # one per decode step (prefill excluded)

    @property
    def s_per_token(self) -> float:
        return statistics.fmean(self.step_s) if self.step_s else float("nan")

    @property
    def s_per_token_median(self) -> float:
        return statistics.median(self.step_s) if self.step_s else float("nan")


class _StepClock(StoppingCriteria):
    """Called once per generated token: waits for the GPU, then reads the clock."""

    def __init__(self, cuda: bool):
        self.cuda, self.t = cuda, []

    def __call__(self, input_ids, scores, **kw):
        if self.cuda:
            torch.cuda.synchronize()
        self.t.append(time.perf_counter())
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


def greedy(model: nn.Module, input_ids: torch.Tensor, new_tokens: int) -> Generation:
    """Greedy decoding of exactly `new_tokens` tokens, batch 1, timed step by step."""
    cuda = input_ids.is_cuda
    clock = _StepClock(cuda)
    with torch.no_grad():
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = model.generate(input_ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                             num_beams=1, pad_token_id=0, eos_token_id=None,
                             stopping_criteria=StoppingCriteriaList([clock]),
                             return_dict_in_generate=True, output_logits=True)
    steps = [b - a for a, b in zip(clock.t, clock.t[1:])]
    return Generation(tokens=out.sequences[0, input_ids.shape[1]:].tolist(),
                      first_logits=out.logits[0].detach().cpu(), prefill_s=clock.t[0] - t0, step_s=steps)


def h2d_GBps(pinned: bool, nbytes: int = 1 << 30, reps: int = 20) -> float:
    """Host-to-GPU copy bandwidth (GB/s, 1e9 B), median of `reps` copies timed with CUDA events."""
    src = torch.ones(nbytes, dtype=torch.uint8, pin_memory=pinned)
    dst = torch.empty(nbytes, dtype=torch.uint8, device="cuda")
    dst.copy_(src, non_blocking=pinned)
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        dst.copy_(src, non_blocking=pinned)
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) / 1e3)
    del src, dst
    torch.cuda.empty_cache()
    return nbytes / statistics.median(times) / 1e9


