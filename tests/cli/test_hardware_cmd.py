"""`edgewise devices`, `clusters` and `profile`: tables and JSON a user reads, measurements land in
the profile database and make `local` a device, and bad input is one line with exit status 2."""
import json
import sqlite3
import subprocess
import sys

import pytest
import torch
from typer.testing import CliRunner

from edgewise.cli import app as cli
from edgewise.errors import EdgewiseError
from edgewise.graph.trace import trace
from edgewise.hardware.profile_db import ProfileDB
from edgewise.zoo.spec import load_model


@pytest.fixture(scope="module")
def runner():
    if not any(c.name == "devices" for c in cli.app.registered_commands):
        cli._wire()
    return CliRunner()


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEWISE_PROFILE_DB", str(tmp_path / "profile.db"))
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def invoke(runner, *args):
    result = runner.invoke(cli.app, list(args))
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def test_devices_table_and_json_carry_every_figure_with_sources(runner):
    table = invoke(runner, "devices")
    assert "raspberry-pi-4" in table and "h200-sxm" in table and "472G" in table   # Jetson Nano FP16
    devs = json.loads(invoke(runner, "devices", "--json"))
    nano = next(d for d in devs if d["name"] == "jetson-nano")
    assert nano["peak_flops_per_s"]["float16"] == 472e9 and "data sheet" in nano["sources"]["peak_flops_per_s.float16"]
    one = invoke(runner, "devices", "raspberry-pi-4")
    assert "derived" in one and "estimate" in one


def test_clusters_lists_builtins_and_shows_one(runner, tmp_path):
    listing = json.loads(invoke(runner, "clusters", "--json"))
    by_name = {c["name"]: c for c in listing}
    assert {"edge-fleet", "pi-fleet", "pi-jetson-lan", "phones", "slow-link", "fleet-16"} <= set(by_name)
    assert by_name["edge-fleet"]["devices"] == {"raspberry-pi-4": 4, "jetson-nano": 1}
    shown = json.loads(invoke(runner, "clusters", "slow-link", "--json"))
    assert len(shown["nodes"]) == 3 and shown["links"][0]["bandwidth_bytes_per_s"] == 1.25e6
    assert "medium wifi" in invoke(runner, "clusters", "edge-fleet")


def test_profile_quick_with_a_model_stores_one_row_per_op_and_makes_local(runner, tmp_path):
    out = json.loads(invoke(runner, "profile", "zoo:mlp", "--quick", "--json"))
    ops = trace(*(lambda m: (m.model, m.example_inputs))(load_model("zoo:mlp")), "zoo:mlp").ops
    assert out["ops"]["count"] == len(ops) and out["device"]["name"] == "local"
    assert {m["kind"] for m in out["microbenchmarks"]} == {"matmul", "conv", "memory", "overhead"}
    assert out["fitted"]["rows_used"]["matmul"] >= 1
    # the runtime's own costs, measured against a peer process: a message costs something (how
    # much more a bigger one costs is tests/runtime/test_costs.py's; over 4 KiB against 256 KiB
    # the host's noise can flatten the fitted line to either coefficient alone)
    send = out["runtime"]["send"]
    assert send["fixed_s"] + send["per_byte_s"] * 4096 > 0
    with ProfileDB(tmp_path / "profile.db", readonly=True) as db:
        rows = db.measurements(kind="op")
        assert [m.op_name for m in rows] == [op.name for op in ops]
        assert db.runs()[0].device == "local"
    local = json.loads(invoke(runner, "devices", "local", "--json"))
    assert local["peak_flops_per_s"]["float32"] > 0 and "measured" in local["sources"]["mem_bandwidth_bytes_per_s"]
    # a cluster file can now name the measured machine
    (tmp_path / "c.yaml").write_text("nodes: [{name: me, device: local}, {name: pi, device: raspberry-pi-4}]\n"
                                     "links: [{a: me, b: pi, bandwidth: 100 Mbit/s}]\n")
    assert json.loads(invoke(runner, "clusters", str(tmp_path / "c.yaml"), "--json"))["nodes"][0]["device"]["name"] == "local"


def test_profile_db_option_and_table(runner, tmp_path):
    out = invoke(runner, "profile", "--quick", "--db", str(tmp_path / "other.db"))
    assert "stored as run 1" in out and "fitted efficiencies" in out
    assert sqlite3.connect(tmp_path / "other.db").execute("SELECT count(*) FROM measurements").fetchone()[0] > 0


@pytest.mark.parametrize("args, message", [
    (["devices", "jetson-nan"], "did you mean jetson-nano"),
    (["clusters", "nope.yaml"], "cluster file 'nope.yaml' not found"),
    (["profile", "--quick", "--device", "tpu"], "use cpu or cuda"),
    (["profile", "--quick", "zoo:nope"], "unknown zoo model"),
])
def test_bad_input_is_one_edgewise_error(runner, args, message):
    result = runner.invoke(cli.app, args)
    assert isinstance(result.exception, EdgewiseError) and message in str(result.exception)


def test_junk_database_is_refused_before_measuring(runner, tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_text("this is not sqlite" * 100)
    result = runner.invoke(cli.app, ["profile", "zoo:mlp", "--db", str(junk)])
    assert isinstance(result.exception, EdgewiseError)
    assert "not a usable edgewise profile database" in str(result.exception)


def test_real_command_exits_2_with_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("nodes: [{name: a, device: raspberry-pi-4}]\nlinks: [{a: a, b: b, bandwidth: -1}]\n")
    proc = subprocess.run([sys.executable, "-m", "edgewise", "clusters", str(bad)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and "links.0.bandwidth" in proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_an_unknown_testbed_device_is_refused_before_the_model_is_exported(runner, tmp_path, monkeypatch):
    from edgewise.zoo import spec
    monkeypatch.setenv("EDGEWISE_PROFILE_DB", str(tmp_path / "p.db"))
    exported = []
    monkeypatch.setattr(spec, "export_program", lambda *a: exported.append(a))
    result = runner.invoke(cli.app, ["profile", "zoo:mlp", "--testbed-device", "nope"])
    assert isinstance(result.exception, EdgewiseError) and "nope" in str(result.exception)
    assert exported == []


def test_the_testbed_profile_line_names_what_the_model_costs_the_runtime():
    from edgewise.cli.hardware_cmd import _model_costs
    assert _model_costs({"runtime": {"wake_s": 1.2e-4, "alone_s": 3e-5}}) == (
        "; beyond the back-to-back compute: a step woken for each input 120 us, an input served alone 30 us")
    assert _model_costs({"runtime": {"wake_s": 1.2e-4, "alone_s": 3e-5, "received_s": 2.5e-4}}) == (
        "; beyond the back-to-back compute: a step woken for each input 120 us, a message received 250 us, "
        "an input served alone 30 us")
    assert _model_costs({"runtime": {"wake_s": 1.2e-4, "spread_s": 4e-4}}) == (
        "; beyond the back-to-back compute: a step woken for each input 120 us; its step varies by 400 us")
    assert _model_costs({"runtime": {"wake_s": 0.0, "alone_s": None}}) == ""    # no model: nothing measured
    assert _model_costs({"runtime": None}) == ""


def test_a_testbed_profile_of_a_model_is_taken_three_times_unless_asked_otherwise(runner, monkeypatch):
    import contextlib
    from edgewise.testbed import profiling
    from edgewise.zoo import spec
    asked = []
    monkeypatch.setattr(profiling, "check_testbed_device", lambda *a: None)
    monkeypatch.setattr(spec, "saved_program", contextlib.contextmanager(lambda model: iter([None])))
    monkeypatch.setattr(profiling, "profile_in_testbed", lambda *a, rounds, **k: asked.append(rounds) or {"rounds": rounds})
    for args in (["zoo:mlp"], [], ["zoo:mlp", "--rounds", "5"]):
        result = runner.invoke(cli.app, ["profile", *args, "--testbed-device", "pi0", "--json"])
        assert result.exit_code == 0, result.output
    assert asked == [3, 1, 5]


def test_rounds_without_a_testbed_device_are_refused(runner):
    result = runner.invoke(cli.app, ["profile", "--rounds", "2"])
    assert isinstance(result.exception, EdgewiseError) and "--rounds" in str(result.exception)


@pytest.mark.parametrize("args, says", [
    (["--stages", "{missing}"], "no such plan file"),
    (["--stages", "{bad}"], "not a plan JSON file"),
    (["zoo:mlp", "--stages", "{bad}"], "give neither MODEL nor --testbed-device"),
    (["--testbed-device", "pi0", "--stages", "{bad}"], "give neither MODEL nor --testbed-device"),
])
def test_profiling_a_plans_stages_refuses_bad_input_in_one_line(runner, tmp_path, args, says):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    paths = {"missing": str(tmp_path / "none.json"), "bad": str(bad)}
    result = runner.invoke(cli.app, ["profile", *[a.format(**paths) for a in args]])
    assert isinstance(result.exception, EdgewiseError) and says in str(result.exception)
    assert "\n" not in str(result.exception)
