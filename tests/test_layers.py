"""Imports point down the layers of DESIGN.md: a package imports only those listed before it
(and the top-level helpers), and sim and runtime never import each other."""
import ast
from pathlib import Path

import edgewise

LAYERS = ["graph", "hardware", "cost", "plan", "sim", "runtime", "codecs", "offload", "testbed", "zoo", "apps", "cli"]
APART = {("runtime", "sim"), ("sim", "runtime")}     # both read a Plan, neither knows the other
ROOT = Path(edgewise.__file__).parent


def imported_layers(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return {n.split(".")[1] for n in names if n.startswith("edgewise.") and n.split(".")[1] in LAYERS}


def test_every_import_points_down_the_layers():
    wrong = []
    for layer in LAYERS:
        for path in sorted((ROOT / layer).rglob("*.py")):
            for used in imported_layers(path):
                if LAYERS.index(used) > LAYERS.index(layer) or (layer, used) in APART:
                    wrong.append(f"{path.relative_to(ROOT)} imports edgewise.{used}")
    assert not wrong, wrong
