"""What every command shares: the --json switch, printing, and one-line errors."""
from __future__ import annotations

import json
from typing import Any, Callable

import typer
from pydantic import BaseModel
from rich.console import Console

console = Console()
err_console = Console(stderr=True)

JsonOption = typer.Option(False, "--json", help="Print machine-readable JSON instead of a table.")


def to_jsonable(obj: Any) -> Any:
    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="json", by_alias=True)
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(o) for o in obj]
    if isinstance(obj, dict):
        return {k: to_jsonable(v) for k, v in obj.items()}
    return obj


def emit(obj: Any, as_json: bool, render: Callable[[], None]) -> None:
    """Print `obj` as JSON when asked, else call `render` to print it for a person."""
    if as_json:
        print(json.dumps(to_jsonable(obj), indent=2))
    else:
        render()
