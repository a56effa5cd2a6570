"""`edgewise inspect MODEL`: the op graph of a model, summarised by layer."""
from __future__ import annotations

import typer
from rich.table import Table

from edgewise.cli.common import JsonOption, console, emit
from edgewise.errors import EdgewiseError
from edgewise.graph.summary import by_layer
from edgewise.graph.trace import trace
from edgewise.zoo.spec import FORMS, load_model


def inspect(
    model: str = typer.Argument(..., help=f"Model spec: {FORMS}."),
    as_json: bool = JsonOption,
    depth: int | None = typer.Option(
        None, "--depth", help="Group ops by module path cut at this depth "
                              "(by default the shallowest depth that gives 8 rows or more)."),
) -> None:
    """Trace MODEL and print its ops by layer: output shapes, FLOPs, parameter and activation bytes."""
    if depth is not None and depth < 1:
        raise EdgewiseError(f"--depth must be at least 1, got {depth}")
    loaded = load_model(model)
    graph = trace(loaded.model, loaded.example_inputs, spec=model)
    emit(graph, as_json, lambda: _render(graph, depth))


def _render(graph, depth: int | None) -> None:
    table = Table(title=f"{graph.model}: {len(graph.ops)} ops, traced at {graph.level} level")
    table.add_column("layer", overflow="fold")          # long module paths wrap, not crop
    table.add_column("ops", justify="right")
    table.add_column("output shape", overflow="fold")
    for col in ("FLOPs", "params", "activations"):
        table.add_column(col, justify="right", no_wrap=True)
    for row in by_layer(graph, depth):
        table.add_row(row.layer, str(row.ops), " ".join(str(list(s)) for s in row.output_shapes),
                      _si(row.flops), _bytes(row.param_bytes), _bytes(row.activation_bytes))
    table.add_section()
    table.add_row("total", str(len(graph.ops)), "", _si(graph.total_flops),
                  _bytes(graph.total_param_bytes), _bytes(graph.total_activation_bytes))
    console.print(table)


def _si(n: float) -> str:
    for unit in ("", "K", "M", "G", "T"):
        if abs(n) < 1000:
            return f"{n:.3g}{unit}"
        n /= 1000
    return f"{n:.3g}P"


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024:
            return f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} TiB"
