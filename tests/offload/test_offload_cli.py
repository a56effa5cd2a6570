"""`edgewise offload`: generates on the CPU with tiny models; every bad input is a one-line error, exit 2."""
import json
import subprocess
import sys

import pytest
from hypothesis import given, strategies as st
from typer.testing import CliRunner

from edgewise.cli import app as cli
from edgewise.errors import EdgewiseError
from edgewise.offload.sizes import parse_bytes


@pytest.fixture(scope="module")
def runner():
    if not any(c.name == "offload" for c in cli.app.registered_commands):
        cli._wire()
    return CliRunner()


@pytest.mark.parametrize("args", [["tiny-llama", "--gpu-memory", "3.2MiB"],
                                  ["tiny-opt", "--layers", "8", "--gpu-memory", "6MiB", "--sparsity", "0.5",
                                   "--storage", "disk"]])
def test_generates_and_reports_json(runner, args):
    r = runner.invoke(cli.app, ["offload", *args, "--new-tokens", "3",
                                "--device", "cpu", "--json"])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.output)
    assert len(rep["generated"]) == 3 and rep["streamed_layers"] > 0
    assert rep["tokens_per_s"] > 0 and rep["wire_bytes_per_token"] > 0
    assert rep["codec"] == ("bitmap" if "--sparsity" in args else "dense")
    assert rep["data"] == "random weights"


def test_table_names_the_figures(runner):
    r = runner.invoke(cli.app, ["offload", "tiny-llama", "--gpu-memory", "3.2MiB", "--new-tokens", "2",
                                "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert "tokens/s" in r.output and "fraction of PCIe bound" in r.output and "generated:" in r.output


@pytest.mark.parametrize("args, match", [
    (["tiny-opt", "--gpu-memory", "8 gigs"], "not a size"),
    (["tiny-opt", "--gpu-memory", "0GiB"], "between"),
    (["tiny-opt", "--gpu-memory", "10KiB", "--device", "cpu"], "too small"),
    (["tiny-opt", "--sparsity", "1.0"], "out of range"),
    (["tiny-opt", "--sparsity", "-0.1"], "out of range"),
    (["gpt-9"], "unknown"),
    (["tiny-opt", "--storage", "tape"], "--storage"),
    (["tiny-opt", "--layers", "0"], "--layers"),
    (["tiny-opt", "--device", "tpu"], "--device"),
])
def test_bad_inputs_are_one_line_errors(runner, args, match):
    r = runner.invoke(cli.app, ["offload", *args])
    assert isinstance(r.exception, EdgewiseError), r.output
    assert match in str(r.exception) and "\n" not in str(r.exception)


def test_real_command_exits_2_without_traceback():
    r = subprocess.run([sys.executable, "-m", "edgewise", "offload", "tiny-opt", "--sparsity", "2"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert r.stderr.strip().startswith("error: --sparsity 2") and "Traceback" not in r.stderr


@pytest.mark.parametrize("text, n", [("8GiB", 8 << 30), ("512MiB", 512 << 20), ("1.5GB", 1_500_000_000),
                                     ("4096", 4096), (" 2 kib ", 2048), ("3B", 3)])
def test_sizes(text, n):
    assert parse_bytes(text) == n


@given(st.text(max_size=20))
def test_size_parser_fuzz_raises_only_edgewise_errors(text):
    try:
        assert parse_bytes(text) > 0
    except EdgewiseError as e:
        assert "\n" not in str(e)
