"""Module-level OpGraph, for models no tracer can take apart.

The units are the model's children, with every nn.Sequential / nn.ModuleList among them,
and every child that holds one deeper down, replaced by its own children (recursively): a
ResNet's blocks, a transformer's layers, even inside a wrapper such as a Hugging Face
`...ForCausalLM`. The model runs once, eagerly, with hooks on the
units: FLOPs come from FlopCounterMode, shapes from the outputs, and edges from following
each tensor back to the unit that made it (through any glue code in the model's forward).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from edgewise.errors import EdgewiseError
from edgewise.graph.failures import first_line
from edgewise.graph.opgraph import Op, OpGraph, TensorSpec
from edgewise.graph.tensors import nbytes, tensors_in

_CONTAINERS = (nn.Sequential, nn.ModuleList)


def units(model: nn.Module, prefix: str = "") -> list[tuple[str, nn.Module]]:
    found = []
    for name, child in model.named_children():
        path = f"{prefix}{name}"
        if any(isinstance(m, _CONTAINERS) for m in child.modules()):
            found += units(child, f"{path}.")
        else:
            found.append((path, child))
    return found


@dataclass
class _Unit:
    name: str
    kind: str
    inputs: dict[str, None] = field(default_factory=dict)      # ordered set of producers
    output_shapes: tuple[tuple[int, ...], ...] = ()
    output_bytes: int = 0
    bytes_read: int = 0
    flops: int = 0


class _Provenance(TorchDispatchMode):
    """Remembers which unit (or model input) each tensor came from.

    Outside the units, an op's outputs inherit the producers of its inputs, so a tensor
    that the model's own forward reshapes or adds still leads back to the units behind it.
    """

    def __init__(self):
        super().__init__()
        self.producers: dict[int, dict[str, None]] = {}
        self.keep: list[torch.Tensor] = []   # ids stay unique only while the tensors live
        self.inside = 0

    def mark(self, tensors: list[torch.Tensor], producers: dict[str, None]) -> None:
        for t in tensors:
            self.producers[id(t)] = producers
            self.keep.append(t)

    def of(self, tensors: list[torch.Tensor]) -> dict[str, None]:
        found: dict[str, None] = {}
        for t in tensors:
            found.update(self.producers.get(id(t), {}))
        return found

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if not self.inside:
            self.mark(tensors_in(out), self.of(tensors_in((args, kwargs))))
        return out




def trace_modules(model: nn.Module, example_inputs: tuple, spec: str = "") -> OpGraph:
    parts = units(model)
    if not parts:
        raise EdgewiseError(f"{type(model).__name__} has no child modules to plan by")
    name_of = {id(m): n for n, m in reversed(parts)}     # a shared module keeps its first name
    seen: dict[str, _Unit] = {}
    provenance = _Provenance()
    counter = FlopCounterMode(display=False)
    state = {"mark": 0, "active": []}

    def before(module: nn.Module, args, kwargs):
        provenance.inside += 1
        state["active"].append(name_of[id(module)])

    def after(module: nn.Module, args, kwargs, out):
        name = state["active"].pop()
        provenance.inside -= 1
        if provenance.inside:                  # a unit called from inside another unit
            return
        unit = seen.setdefault(name, _Unit(name=name, kind=type(module).__name__))
        ins = tensors_in((args, kwargs))
        unit.inputs.update((p, None) for p in provenance.of(ins) if p != name)
        outs = tensors_in(out)
        unit.output_shapes = tuple(tuple(t.shape) for t in outs)
        unit.output_bytes = sum(nbytes(t) for t in outs)
        unit.bytes_read += sum(nbytes(t) for t in ins)
        # Glue FLOPs of the model's forward since the previous unit go to this one, so the
        # units' FLOPs add up to the whole forward's.
        total = counter.get_total_flops()
        unit.flops += total - state["mark"]
        state["mark"] = total
        provenance.mark(outs, {name: None})

    handles = []
    for _, module in parts:
        handles.append(module.register_forward_pre_hook(before, with_kwargs=True))
        handles.append(module.register_forward_hook(after, with_kwargs=True))
    flat_inputs = tensors_in(example_inputs)
    provenance.mark(flat_inputs, {})
    for i, t in enumerate(flat_inputs):
        provenance.producers[id(t)] = {f"input:{i}": None}
    try:
        with counter, provenance:
            result = model(*example_inputs)
    except Exception as e:
        where = f"module {state['active'][-1]!r}" if state["active"] else "the model's forward"
        raise EdgewiseError(f"{where} failed: {first_line(e)}") from e
    finally:
        for h in handles:
            h.remove()
    if not seen:
        raise EdgewiseError(f"{type(model).__name__}'s forward called none of its children")
    ordered = list(seen.values())
    ordered[-1].flops += counter.get_total_flops() - state["mark"]   # glue after the last unit
    return OpGraph(model=spec, level="module",
                   inputs=tuple(TensorSpec(shape=tuple(t.shape),
                                           dtype=str(t.dtype).removeprefix("torch."))
                                for t in flat_inputs),
                   outputs=tuple(provenance.of(tensors_in(result))),
                   ops=_ops(model, ordered))


def _ops(model: nn.Module, ordered: list[_Unit]) -> tuple[Op, ...]:
    """Units in call order, each owning its parameters and buffers (a tensor shared by two
    keys counts once). What no unit owns (the model's own glue parameters) goes to the first
    unit, so that parameter bytes add up to the whole model's."""
    state = model.state_dict(keep_vars=True)
    claimed: set[int] = set()

    def claim(keys) -> tuple[str, ...]:
        owned = []
        for k in keys:
            if id(state[k]) not in claimed:
                claimed.add(id(state[k]))
                owned.append(k)
        return tuple(owned)

    owned = [claim(k for k in state if k.startswith(f"{u.name}.")) for u in ordered]
    owned[0] += claim(state)
    position = {u.name: i for i, u in enumerate(ordered)}
    ops = []
    for i, (unit, keys) in enumerate(zip(ordered, owned)):
        # A unit called twice may have met later units' outputs; keep the order topological.
        inputs = tuple(p for p in unit.inputs if position.get(p, -1) < i)
        ops.append(Op(name=unit.name, kind=unit.kind, layer=unit.name, inputs=inputs,
                      output_shapes=unit.output_shapes, output_bytes=unit.output_bytes,
                      flops=unit.flops, bytes_moved=unit.bytes_read + unit.output_bytes,
                      param_bytes=sum(nbytes(state[k]) for k in keys), param_names=keys))
    return tuple(ops)
