"""`edgewise inspect`: a table by layer with totals, the whole OpGraph as JSON, and a one-line
error (exit 2 from the real command) for every bad spec."""
import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from edgewise.cli import app as cli
from edgewise.errors import EdgewiseError


@pytest.fixture(scope="module")
def runner():
    if not any(c.name == "inspect" for c in cli.app.registered_commands):
        cli._wire()
    return CliRunner()


def test_table_has_one_row_per_layer_and_totals(runner):
    result = runner.invoke(cli.app, ["inspect", "zoo:m5"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "traced at op level" in out and "total" in out
    for layer in ("0", "1", "12", "18"):                # Sequential children are the layers
        assert f"│ {layer} " in out
    assert "[1, 35]" in out                               # the classifier's output shape


def test_json_is_the_whole_opgraph_with_totals_at_top_level(runner):
    result = runner.invoke(cli.app, ["inspect", "zoo:mlp", "--json"])
    assert result.exit_code == 0, result.output
    graph = json.loads(result.output)
    assert graph["model"] == "zoo:mlp" and graph["level"] == "op"
    assert graph["total_flops"] == sum(op["flops"] for op in graph["ops"]) == 2 * (
        784 * 512 + 5 * 512 * 512 + 512 * 10)
    assert graph["total_param_bytes"] == 4 * (784 * 512 + 512 + 5 * (512 * 512 + 512) + 5130)
    assert graph["total_activation_bytes"] == sum(op["output_bytes"] for op in graph["ops"])
    assert graph["ops"][0]["inputs"] == ["input:0"]


def test_depth_groups_deeper_module_paths(runner, tmp_path):
    path = tmp_path / "nested.py"
    path.write_text("import torch\nfrom torch import nn\n"
                    "def make():\n"
                    "    block = lambda: nn.Sequential(nn.Linear(4, 4), nn.ReLU())\n"
                    "    return nn.Sequential(nn.Sequential(block(), block())), (torch.randn(1, 4),)\n")
    shallow = runner.invoke(cli.app, ["inspect", f"{path}:make", "--depth", "1"]).output
    deep = runner.invoke(cli.app, ["inspect", f"{path}:make", "--depth", "2"]).output
    auto = runner.invoke(cli.app, ["inspect", f"{path}:make"]).output
    assert "│ 0 " in shallow and "│ 0.1 " not in shallow
    assert "│ 0.0 " in deep and "│ 0.1 " in deep
    # Fewer than 8 rows at every depth: the default shows the deepest modules.
    assert "│ 0.0.0 " in auto and "│ 0.1.1 " in auto


@pytest.mark.parametrize("args, expected", [
    (["zoo:resnet"], "did you mean"),
    (["nowhere/model.py:make"], "no such file"),
    (["missing.onnx"], "no such file"),
    (["model.txt"], "is not one of"),
    (["zoo:mlp", "--depth", "0"], "--depth must be at least 1"),
])
def test_bad_input_is_a_one_line_edgewise_error(runner, args, expected):
    result = runner.invoke(cli.app, ["inspect", *args])
    assert isinstance(result.exception, EdgewiseError)
    assert expected in str(result.exception) and "\n" not in str(result.exception)


def test_real_command_exits_2_with_one_error_line():
    proc = subprocess.run([sys.executable, "-m", "edgewise", "inspect", "zoo:gtp2"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: unknown zoo model 'gtp2'; did you mean zoo:gpt2?"]


def test_fallback_to_module_level_is_said_and_leaves_stderr_clean(tmp_path):
    path = tmp_path / "untraceable.py"
    path.write_text("import torch\nfrom torch import nn\n"
                    "class Gate(nn.Module):\n"
                    "    def forward(self, x):\n"
                    "        return x if x.sum() > 0 else -x\n"
                    "def make():\n"
                    "    return nn.Sequential(nn.Linear(4, 4), Gate()), (torch.randn(1, 4),)\n")
    proc = subprocess.run([sys.executable, "-m", "edgewise", "inspect", f"{path}:make", "--json"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stderr == ""
    graph = json.loads(proc.stdout)
    assert graph["level"] == "module" and [op["name"] for op in graph["ops"]] == ["0", "1"]
