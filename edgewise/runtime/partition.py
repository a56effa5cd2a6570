"""Cutting a model into the stages a Plan names (graph/stages.py does the cutting).

The plan names each stage's ops; call_function nodes it does not name (pure metadata ops the
tracer folded away) go to the latest stage among their inputs, which keeps every producer
before its consumers.
"""
from __future__ import annotations

import torch
from torch import fx

from edgewise.errors import EdgewiseError
from edgewise.graph.stages import StagedModel, StageProgram, export_module, split_graph
from edgewise.plan.schema import Plan


def stage_of_nodes(gm: fx.GraphModule, plan: Plan) -> dict[str, int]:
    """Stage index of every call_function node; unnamed ones follow their latest input."""
    named = {op: i for i, st in enumerate(plan.stages) for op in st.ops}
    out: dict[str, int] = {}
    for node in gm.graph.nodes:
        if node.op != "call_function":
            continue
        if node.name in named:
            out[node.name] = named[node.name]
        else:
            out[node.name] = max((out.get(a.name, 0) for a in node.all_input_nodes), default=0)
    missing = set(named) - set(out)
    if missing:
        raise EdgewiseError(f"plan names ops the model does not have: {sorted(missing)[:3]} "
                            f"(was the plan made for {plan.model!r} with the same version?)")
    return out


def split(model: torch.nn.Module, example_inputs: tuple, plan: Plan) -> StagedModel:
    gm = export_module(model, example_inputs)
    stage = stage_of_nodes(gm, plan)
    staged = split_graph(gm, model, lambda node: stage[node.name])
    if len(staged.stages) != len(plan.stages):
        raise EdgewiseError(f"plan has {len(plan.stages)} stages but only {len(staged.stages)} hold any op")
    return staged


def to_device(st: StageProgram, device: torch.device) -> None:
    """Make a stage run on `device`. torch.export writes the device it traced on into the ops
    that make tensors (`arange(..., device=cpu)`, `to(cpu)`, metadata asserts), so every device
    a node names becomes `device`; the stage's weights are moved by the caller."""
    def swap(a):
        return device if isinstance(a, torch.device) else a

    for gm in st.module.modules():
        if isinstance(gm, fx.GraphModule):
            for node in gm.graph.nodes:
                node.args = fx.node.map_aggregate(node.args, swap)
                node.kwargs = fx.node.map_aggregate(node.kwargs, swap)
            gm.recompile()
    st.module.to(device)

