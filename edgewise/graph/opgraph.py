"""The OpGraph: what runs. Operators with shapes, FLOPs and bytes, in topological order.

This is the seam between tracing (graph/trace.py) and everything that costs, plans or runs
a model. It knows nothing of devices or clusters.
"""
from __future__ import annotations

from functools import cached_property
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field


class TensorSpec(BaseModel):
    shape: tuple[int, ...]
    dtype: str = "float32"


class Op(BaseModel):
    """One node of the graph.

    `inputs` names producer ops in the same graph, or graph inputs as `input:<i>`.
    `flops` follows torch.utils.flop_counter (matmul, convolution, attention); ops it does
    not count (elementwise, data movement) have flops 0 and are costed by `bytes_moved`.
    `param_bytes` are the parameters and buffers this op is the first to use.
    """
    model_config = ConfigDict(frozen=True)

    name: str
    kind: str                                   # e.g. "aten.convolution.default" or a module class
    layer: str = ""                             # owning module path, for summaries by layer
    inputs: tuple[str, ...] = ()
    output_shapes: tuple[tuple[int, ...], ...] = ()
    output_bytes: int = 0
    flops: int = 0
    bytes_moved: int = 0
    param_bytes: int = 0
    param_names: tuple[str, ...] = ()          # state_dict keys this op owns (for the runtime)


class OpGraph(BaseModel):
    model: str                                  # the model spec it was traced from
    level: Literal["op", "module"]              # granularity the tracer managed
    inputs: tuple[TensorSpec, ...] = ()
    outputs: tuple[str, ...] = ()               # names of ops whose results are the model outputs
    ops: tuple[Op, ...] = Field(default_factory=tuple)

    @computed_field
    @property
    def total_flops(self) -> int:
        return sum(o.flops for o in self.ops)

    @computed_field
    @property
    def total_param_bytes(self) -> int:
        return sum(o.param_bytes for o in self.ops)

    @computed_field
    @property
    def total_activation_bytes(self) -> int:
        return sum(o.output_bytes for o in self.ops)

    @cached_property
    def index(self) -> dict[str, int]:
        """Position of each op by name (ops are stored in topological order)."""
        return {o.name: i for i, o in enumerate(self.ops)}

    def input_bytes(self) -> int:
        from math import prod
        return sum(prod(t.shape) * _dtype_bytes(t.dtype) for t in self.inputs)


_DTYPE_BYTES = {"float64": 8, "float32": 4, "float16": 2, "bfloat16": 2, "int64": 8, "int32": 4,
                "int16": 2, "int8": 1, "uint8": 1, "bool": 1}


def _dtype_bytes(dtype: str) -> int:
    return _DTYPE_BYTES.get(dtype.removeprefix("torch."), 4)
