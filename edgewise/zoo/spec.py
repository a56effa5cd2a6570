"""Model specs: the one way a user names a model anywhere in edgewise.

    zoo:NAME              a factory from edgewise.zoo (random weights)
    path/file.py:factory  `factory()` returns `(model, example_inputs)`
    path/file.onnx        converted to PyTorch with onnx2torch; inputs from the graph's shapes

Every bad spec becomes an EdgewiseError whose one-line message names what was wrong.
"""
from __future__ import annotations

import difflib
import importlib.util
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch
from torch import nn

from edgewise import zoo
from edgewise.errors import EdgewiseError
from edgewise.graph.failures import first_line
from edgewise.graph.stages import export_program

FORMS = "zoo:NAME, path/file.py:factory or path/file.onnx"


@dataclass
class LoadedModel:
    spec: str
    model: nn.Module                          # in eval mode
    example_inputs: tuple[torch.Tensor, ...]


def load_model(spec: str) -> LoadedModel:
    """The model a spec names, built from a fixed seed: every process that loads the same spec
    (each stage's worker does) gets the same random weights and example inputs. The caller's
    random state is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return _load(spec)


@contextmanager
def saved_program(spec: str | None) -> Iterator[str | None]:
    """The model `spec` names, exported and saved (torch.export.save, example inputs included)
    to a file that lasts as long as the context: for processes that must run it without
    importing this layer (runtime/costs.py, measure_wake). None for no spec."""
    if spec is None:
        yield None
        return
    loaded = load_model(spec)
    program = export_program(loaded.model, loaded.example_inputs)
    with tempfile.TemporaryDirectory(prefix="edgewise-") as folder:
        path = str(Path(folder) / "model.pt2")
        torch.export.save(program, path)
        yield path


def _load(spec: str) -> LoadedModel:
    if spec.startswith("zoo:"):
        model, inputs = _from_zoo(spec.removeprefix("zoo:"))
        return _checked(spec, model, inputs)
    if spec.endswith(".onnx"):
        model, inputs = _from_onnx(spec)
        return _checked(spec, model, inputs)
    path, sep, factory = spec.rpartition(":")
    if sep and path.endswith(".py"):
        return _checked(spec, *_call_factory(spec, _import_file(spec, path), factory))
    if spec.endswith(".py"):
        raise EdgewiseError(f"model spec {spec!r} names no factory; write {spec}:FUNCTION, "
                            f"where FUNCTION() returns (model, example_inputs)")
    raise EdgewiseError(f"model spec {spec!r} is not one of {FORMS}")


def _from_zoo(name: str) -> tuple:
    factory = zoo.FACTORIES.get(name)
    if factory is None:
        close = difflib.get_close_matches(name, zoo.names(), n=3)
        hint = f"did you mean {', '.join('zoo:' + c for c in close)}?" if close \
            else f"known: {', '.join(zoo.names())}"
        raise EdgewiseError(f"unknown zoo model {name!r}; {hint}")
    return factory()


def _existing_file(spec: str, path: str) -> Path:
    try:
        p = Path(path)
        if p.is_file():
            return p
    except (OSError, ValueError):                  # names too long, NUL bytes
        pass
    raise EdgewiseError(f"model spec {spec!r}: no such file {path!r}")


def _import_file(spec: str, path: str):
    file = _existing_file(spec, path)
    module_name = f"_edgewise_user_model_{abs(hash(str(file.resolve())))}"
    loader_spec = importlib.util.spec_from_file_location(module_name, file)
    module = importlib.util.module_from_spec(loader_spec)
    # Registered so that classes defined in the file can be found again (pickling, tracing).
    sys.modules[module_name] = module
    try:
        loader_spec.loader.exec_module(module)
    except Exception as e:
        del sys.modules[module_name]
        raise EdgewiseError(f"model spec {spec!r}: importing {path!r} failed: {first_line(e)}") from e
    return module


def _call_factory(spec: str, module, name: str) -> tuple:
    factory = getattr(module, name, None) if name.isidentifier() else None
    if not callable(factory):
        raise EdgewiseError(f"model spec {spec!r}: {name!r} is not a function in that file; "
                            f"the part after ':' must name a factory returning (model, example_inputs)")
    try:
        result = factory()
    except Exception as e:
        raise EdgewiseError(f"model spec {spec!r}: {name}() raised {first_line(e)}") from e
    if not (isinstance(result, (tuple, list)) and len(result) == 2):
        raise EdgewiseError(f"model spec {spec!r}: {name}() returned {type(result).__name__}; "
                            f"it must return (model, example_inputs)")
    return result


def _checked(spec: str, model, inputs) -> LoadedModel:
    if not isinstance(model, nn.Module):
        raise EdgewiseError(f"model spec {spec!r}: the model is a {type(model).__name__}, "
                            f"not a torch.nn.Module")
    if isinstance(inputs, torch.Tensor):
        inputs = (inputs,)
    if not (isinstance(inputs, (tuple, list)) and inputs
            and all(isinstance(t, torch.Tensor) for t in inputs)):
        raise EdgewiseError(f"model spec {spec!r}: example_inputs must be a non-empty tuple of "
                            f"tensors, got {type(inputs).__name__}")
    return LoadedModel(spec=spec, model=model.eval(), example_inputs=tuple(inputs))


_ONNX_DTYPES = {1: torch.float32, 10: torch.float16, 11: torch.float64, 16: torch.bfloat16,
                6: torch.int32, 7: torch.int64, 9: torch.bool, 2: torch.uint8, 3: torch.int8}


def _from_onnx(spec: str) -> tuple:
    import onnx
    from onnx2torch import convert

    file = _existing_file(spec, spec)
    try:
        proto = onnx.load(str(file))
        onnx.checker.check_model(proto)
    except Exception as e:
        raise EdgewiseError(f"model spec {spec!r}: not a readable ONNX model: {first_line(e)}") from e
    initializers = {t.name for t in proto.graph.initializer}
    inputs = []
    for value in proto.graph.input:
        if value.name in initializers:             # old exporters list weights as inputs too
            continue
        tensor_type = value.type.tensor_type
        dtype = _ONNX_DTYPES.get(tensor_type.elem_type)
        if dtype is None:
            raise EdgewiseError(f"model spec {spec!r}: input {value.name!r} has ONNX element "
                                f"type {tensor_type.elem_type}, which edgewise cannot feed")
        # Symbolic dimensions (batch, sequence) become 1: batch size 1 example inputs.
        shape = [d.dim_value if d.HasField("dim_value") else 1 for d in tensor_type.shape.dim]
        inputs.append(torch.randn(shape).to(dtype) if dtype.is_floating_point
                      else torch.zeros(shape, dtype=dtype))
    try:
        model = convert(proto)
    except Exception as e:
        raise EdgewiseError(f"model spec {spec!r}: onnx2torch cannot convert it: {first_line(e)}") from e
    return model, tuple(inputs)
