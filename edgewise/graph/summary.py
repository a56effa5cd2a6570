"""An OpGraph summarised by layer: ops grouped under their module path cut at a depth."""
from __future__ import annotations

from pydantic import BaseModel

from edgewise.graph.opgraph import OpGraph

ROOT = "(model)"     # ops that belong to the model's own forward, outside any child module


class LayerSummary(BaseModel):
    layer: str
    ops: int
    output_shapes: tuple[tuple[int, ...], ...]   # of the layer's last op: what it hands on
    flops: int
    param_bytes: int
    activation_bytes: int


def layer_key(layer: str, depth: int) -> str:
    """`layer2.0.conv1` at depth 1 is `layer2`, at depth 2 `layer2.0`."""
    return ".".join(layer.split(".")[:depth]) if layer else ROOT


def auto_depth(graph: OpGraph, min_rows: int = 8) -> int:
    """The shallowest depth that gives at least `min_rows` rows, so a wrapped model
    (`lm.transformer.h.0...`) shows its blocks rather than one row for the wrapper."""
    deepest = max((len(op.layer.split(".")) for op in graph.ops if op.layer), default=1)
    for depth in range(1, deepest):
        if len({layer_key(op.layer, depth) for op in graph.ops}) >= min_rows:
            return depth
    return deepest


def by_layer(graph: OpGraph, depth: int | None = None) -> list[LayerSummary]:
    """One row per module at `depth` (default: `auto_depth`), in order of first appearance.
    A layer whose ops are interleaved with another's (a skip branch) still gets one row."""
    depth = depth or auto_depth(graph)
    rows: dict[str, LayerSummary] = {}
    for op in graph.ops:
        key = layer_key(op.layer, depth)
        row = rows.get(key)
        if row is None:
            row = rows[key] = LayerSummary(layer=key, ops=0, output_shapes=(), flops=0,
                                           param_bytes=0, activation_bytes=0)
        row.ops += 1
        row.output_shapes = op.output_shapes
        row.flops += op.flops
        row.param_bytes += op.param_bytes
        row.activation_bytes += op.output_bytes
    return list(rows.values())
