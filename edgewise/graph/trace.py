"""Tracing a PyTorch model into an OpGraph.

Op level first: `torch.export` (non-strict), whose node names the profiler and the runtime
find again by exporting the same model; then `torch.fx.symbolic_trace`. When neither can
trace the model, it is described at module level (graph/modules.py).

Every node of the traced graph carries a fake tensor (`node.meta["val"]`), so each op is
re-run alone on fake tensors under `FlopCounterMode`: FLOPs follow torch's own convention
and cost no real compute, which is why GPT-2 XL on the meta device traces in seconds.

Pure metadata nodes (views, getitem, size queries, asserts) are folded away: they produce
no new tensor, so an op that consumes one is linked to the real producer behind it.
"""
from __future__ import annotations

import contextlib
import io
import logging
import operator
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import fx
from torch._guards import detect_fake_mode
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.fx.passes.fake_tensor_prop import FakeTensorProp
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils.flop_counter import FlopCounterMode

from edgewise.errors import EdgewiseError
from edgewise.graph.failures import first_line
from edgewise.graph.modules import trace_modules
from edgewise.graph.opgraph import Op, OpGraph, TensorSpec
from edgewise.graph.tensors import nbytes, tensors_in


def trace(model: torch.nn.Module, example_inputs: tuple, spec: str = "") -> OpGraph:
    """Describe `model` run on `example_inputs` as an OpGraph, at the finest level that works."""
    failures = []
    for tracer, how in ((trace_export, "torch.export"), (trace_fx, "torch.fx")):
        try:
            with _quiet():
                return tracer(model, example_inputs, spec)
        except Exception as e:  # tracers raise many types; the user needs the first line
            failures.append(f"{how}: {first_line(e)}")
    try:
        return trace_modules(model, example_inputs, spec)
    except EdgewiseError as e:
        failures.append(f"module level: {e}")
    raise EdgewiseError(f"cannot trace {spec or type(model).__name__!r}: " + "; ".join(failures))


@contextlib.contextmanager
def _quiet():
    """A tracer that fails is expected here and reported in one line, so its warnings and the
    partial graph torch.export prints to stderr would only bury that line."""
    previous = logging.root.manager.disable
    logging.disable(max(previous, logging.WARNING))
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        logging.disable(previous)


def trace_export(model: torch.nn.Module, example_inputs: tuple, spec: str = "") -> OpGraph:
    ep = torch.export.export(model, tuple(example_inputs), strict=False)
    sig = ep.graph_signature
    user_inputs = set(sig.user_inputs)
    state = {**sig.inputs_to_parameters, **sig.inputs_to_buffers,
             **sig.inputs_to_lifted_tensor_constants}
    placeholders = [n for n in ep.graph.nodes if n.op == "placeholder"]
    sources = {n.name: _Source(param=state[n.name]) for n in placeholders if n.name in state}
    sources.update(_input_sources([n for n in placeholders if n.name in user_inputs]))
    fakes = {state[n.name]: n.meta["val"] for n in placeholders if n.name in state}

    def run(node: fx.Node, args: tuple, kwargs: dict) -> Any:
        return node.target(*args, **kwargs)

    def value(node: fx.Node) -> Any:
        # Higher-order ops (e.g. a no_grad region) take their body as a get_attr submodule.
        return _attr(ep.graph_module, node.target) if node.op == "get_attr" else node.meta["val"]

    return _op_graph(ep.graph, sources, value, run, _fake_mode(ep.graph), spec, fakes)


def trace_fx(model: torch.nn.Module, example_inputs: tuple, spec: str = "") -> OpGraph:
    gm = fx.symbolic_trace(model)
    mode = FakeTensorMode(allow_non_fake_inputs=True)
    FakeTensorProp(gm, mode).propagate(*example_inputs)
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    sources = dict(_input_sources(placeholders))
    for n in gm.graph.nodes:
        if n.op == "get_attr":
            sources[n.name] = _Source(param=n.target)
        elif n.op == "call_module":
            # A leaf module owns its parameters: the node is their first user.
            module = gm.get_submodule(n.target)
            sources[n.name] = _Source(kind=type(module).__name__, params_inside=tuple(
                f"{n.target}.{k}" for k in module.state_dict()))

    def run(node: fx.Node, args: tuple, kwargs: dict) -> Any:
        if node.op == "call_module":
            return gm.get_submodule(node.target)(*args, **kwargs)
        if node.op == "call_method":
            return getattr(args[0], node.target)(*args[1:], **kwargs)
        return node.target(*args, **kwargs)

    def value(node: fx.Node) -> Any:
        return node.meta["val"]

    return _op_graph(gm.graph, sources, value, run, mode, spec,
                     dict(gm.state_dict(keep_vars=True)))


@dataclass
class _Source:
    """What a placeholder, get_attr or leaf-module node stands for besides its output."""
    producer: str | None = None             # "input:<i>" for a model input
    param: str | None = None                # a parameter/buffer/constant key
    params_inside: tuple[str, ...] = ()     # keys owned by an fx leaf module
    kind: str | None = None                 # an fx leaf module's class


@dataclass
class _Lineage:
    """For a folded (metadata) node: the real producers and parameters behind it."""
    producers: dict[str, None] = field(default_factory=dict)    # ordered set
    params: dict[str, None] = field(default_factory=dict)


def _input_sources(placeholders: list[fx.Node]) -> dict[str, _Source]:
    tensors = [n for n in placeholders if isinstance(n.meta.get("val"), torch.Tensor)]
    return {n.name: _Source(producer=f"input:{i}") for i, n in enumerate(tensors)}


def _fake_mode(graph: fx.Graph) -> FakeTensorMode:
    mode = detect_fake_mode([n.meta.get("val") for n in graph.nodes])
    return mode if mode is not None else FakeTensorMode(allow_non_fake_inputs=True)


def _attr(root: torch.nn.Module, target: str) -> Any:
    obj = root
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj




def _layer(node: fx.Node) -> str:
    stack = node.meta.get("nn_module_stack")
    if node.op == "call_module":
        return str(node.target)
    if not stack:
        return ""
    path = list(stack.values())[-1][0]
    return path if isinstance(path, str) else ""


def _is_metadata(node: fx.Node, args: tuple, kwargs: dict, result: Any, flops: int) -> bool:
    """True when the node makes no new tensor: a getitem, a size query, or a pure view."""
    if node.target is operator.getitem:
        return True
    outs = tensors_in(result)
    if not outs:
        return True
    if flops or (isinstance(node.target, torch._ops.OpOverload) and node.target._schema.is_mutable):
        return False
    # A view shares storage with an input; `reshape`/`contiguous` that had to copy do not.
    in_storages = {StorageWeakRef(t.untyped_storage()) for t in tensors_in((args, kwargs))}
    return all(StorageWeakRef(t.untyped_storage()) in in_storages for t in outs)


def _op_graph(graph: fx.Graph, sources: dict[str, _Source], value: Callable[[fx.Node], Any],
              run: Callable[[fx.Node, tuple, dict], Any], mode: FakeTensorMode, spec: str,
              state: dict[str, torch.Tensor]) -> OpGraph:
    """Walk a graph whose nodes carry fake values, re-running each op to count its FLOPs.
    `state` maps every parameter/buffer key that `sources` names to its (fake) tensor."""
    lineage: dict[str, _Lineage] = {}
    claimed: set[str] = set()
    ops: list[Op] = []
    counter = FlopCounterMode(display=False)
    with mode, counter:
        for node in graph.nodes:
            src = sources.get(node.name, _Source())
            if node.op == "output":
                outputs = _lineage_of(node.all_input_nodes, lineage).producers
                continue
            if node.op in ("placeholder", "get_attr"):
                lineage[node.name] = _Lineage(producers=dict.fromkeys(filter(None, [src.producer])),
                                              params=dict.fromkeys(filter(None, [src.param])))
                continue
            args = fx.node.map_arg(node.args, value)
            kwargs = fx.node.map_arg(node.kwargs, value)
            before = counter.get_total_flops()
            try:
                result = run(node, args, kwargs)
            except Exception as e:
                raise EdgewiseError(f"op {node.name} ({node.target}) failed on fake tensors: "
                                    f"{first_line(e)}") from e
            flops = counter.get_total_flops() - before
            feeds = _lineage_of(node.all_input_nodes, lineage)
            feeds.params.update(dict.fromkeys(src.params_inside))   # an fx leaf module's weights
            if _is_metadata(node, args, kwargs, result, flops):
                lineage[node.name] = feeds
                continue
            owned = tuple(k for k in feeds.params if k not in claimed and k in state)
            claimed.update(owned)
            outs = tensors_in(node.meta.get("val", result))
            out_bytes = sum(nbytes(t) for t in outs)
            ops.append(Op(
                name=node.name,
                kind=src.kind or str(node.target),
                layer=_layer(node),
                inputs=tuple(feeds.producers),
                output_shapes=tuple(tuple(int(d) for d in t.shape) for t in outs),
                output_bytes=out_bytes,
                flops=int(flops),
                bytes_moved=sum(nbytes(t) for t in tensors_in((args, kwargs))) + out_bytes,
                param_bytes=sum(nbytes(state[k]) for k in owned),
                param_names=owned,
            ))
            lineage[node.name] = _Lineage(producers={node.name: None})
    op_names = {o.name for o in ops}
    inputs = [n.meta["val"] for n in graph.nodes if sources.get(n.name, _Source()).producer]
    return OpGraph(model=spec, level="op",
                   inputs=tuple(TensorSpec(shape=tuple(t.shape),
                                           dtype=str(t.dtype).removeprefix("torch."))
                                for t in inputs),
                   outputs=tuple(p for p in outputs if p in op_names), ops=tuple(ops))


def _lineage_of(nodes: list[fx.Node], lineage: dict[str, _Lineage]) -> _Lineage:
    merged = _Lineage()
    for n in nodes:
        merged.producers.update(lineage[n.name].producers)
        merged.params.update(lineage[n.name].params)
    return merged
