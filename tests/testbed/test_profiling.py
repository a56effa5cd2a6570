"""`edgewise profile --testbed-device`: measured inside the emulated device, recorded under its own
label in the one profile database, and used to predict runs on the testbed."""
import json
import subprocess
import sys

import pytest

from edgewise.cost.roofline import CostModel
from edgewise.hardware.cluster_io import load_cluster
from edgewise.hardware.profile_db import ProfileDB
from edgewise.testbed import netns
from edgewise.testbed.commands import can_emulate
from edgewise.testbed import profiling

EDGEWISE = [sys.executable, "-m", "edgewise"]


@pytest.mark.skipif(can_emulate() is not None, reason=str(can_emulate()))
def test_profile_inside_an_emulated_pi_is_throttled_and_labelled(tmp_path, monkeypatch):
    db = tmp_path / "p.db"
    monkeypatch.setenv("EDGEWISE_PROFILE_DB", str(db))
    host = subprocess.run(EDGEWISE + ["profile", "--quick", "--json"], capture_output=True, text=True, timeout=300)
    assert host.returncode == 0, host.stderr
    inside = subprocess.run(EDGEWISE + ["profile", "--quick", "--json", "--testbed-device", "pi0"],
                            capture_output=True, text=True, timeout=300)
    assert inside.returncode == 0, inside.stderr
    assert json.loads(inside.stdout)["device"]["name"] == "testbed:raspberry-pi-4"
    assert netns.leftover_namespaces() == []
    with ProfileDB(db, readonly=True) as store:
        assert set(store.devices()) >= {"local", "testbed:raspberry-pi-4"}
    model = profiling.testbed_cost_model(load_cluster("edge-fleet"), CostModel())
    assert "raspberry-pi-4" in model.per_device and "jetson-nano" not in model.per_device


def test_unknown_testbed_device_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEWISE_PROFILE_DB", str(tmp_path / "p.db"))
    r = subprocess.run(EDGEWISE + ["profile", "--testbed-device", "nope"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
