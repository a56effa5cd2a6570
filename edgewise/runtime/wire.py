"""The bytes that cross a cut: a stage's live set packed into one buffer per message.

Both ends know the shapes ahead of time (a fake-tensor pass over the staged model at start),
so one send of raw bytes carries every tensor: no header round trip per input.
"""
from __future__ import annotations

from dataclasses import dataclass
from math import prod

import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from edgewise.errors import EdgewiseError
from edgewise.graph.stages import StagedModel, run_stage


@dataclass(frozen=True)
class WireSpec:
    """What one cut carries: names, shapes and dtypes in a fixed order."""
    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    dtypes: tuple[torch.dtype, ...]

    @property
    def nbytes(self) -> int:
        return sum(prod(s) * torch.empty((), dtype=d).element_size() for s, d in zip(self.shapes, self.dtypes))


def wire_specs(staged: StagedModel, example_inputs: tuple) -> list[WireSpec]:
    """The spec of the input message of stage 0, then of what each stage sends on."""
    with FakeTensorMode(allow_non_fake_inputs=True) as mode:
        env = {n: mode.from_tensor(x) for n, x in zip(staged.inputs, example_inputs)}
        specs = [_spec(env, staged.inputs)]
        for st in staged.stages:
            env = run_stage(st, env, staged.params)
            specs.append(_spec(env, st.sends))
    return specs


def _spec(env: dict, names: list[str]) -> WireSpec:
    for n in names:
        if not isinstance(env[n], torch.Tensor):
            raise EdgewiseError(f"runtime: value {n!r} crossing a stage cut is not a tensor "
                                f"({type(env[n]).__name__}); move the cut")
    return WireSpec(tuple(names), tuple(tuple(env[n].shape) for n in names),
                    tuple(env[n].dtype for n in names))


def pack(spec: WireSpec, env: dict[str, torch.Tensor]) -> torch.Tensor:
    parts = [env[n].detach().contiguous().reshape(-1).view(torch.uint8) for n in spec.names]
    return torch.cat(parts) if len(parts) != 1 else parts[0].clone()


def unpack(spec: WireSpec, buf: torch.Tensor) -> dict[str, torch.Tensor]:
    out, at = {}, 0
    for n, shape, dtype in zip(spec.names, spec.shapes, spec.dtypes):
        size = prod(shape) * torch.empty((), dtype=dtype).element_size()
        out[n] = buf[at:at + size].view(dtype).reshape(shape)
        at += size
    return out
