"""`edgewise run --testbed`: the plan runs inside the emulated fleet, and teardown always happens,
also when a worker is killed mid-run or the user presses Ctrl-C. Needs root; skipped otherwise."""
import json
import signal
import subprocess
import time

import pytest
import torch

from edgewise.testbed import netns
from edgewise.testbed.commands import can_emulate, sh

from edgewise.hardware.cluster import Device

from .test_run_cli import EDGEWISE, expected, write_plan

# Fast enough emulated devices that starting Python and torch under their CPU quota takes seconds
FAST = Device(name="fast", peak_flops_per_s={"float32": 6e10}, memory_bytes=1 << 30, mem_bandwidth_bytes_per_s=1e10)

pytestmark = pytest.mark.skipif(can_emulate() is not None, reason=str(can_emulate()))


def wait_for_worker(ns: str, timeout_s: float = 120) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        pids = sh("ip", "netns", "pids", ns, check=False).split()
        if pids:
            return int(pids[0])
        time.sleep(0.2)
    raise AssertionError(f"no worker appeared in {ns}")


def test_testbed_run_matches_single_process_and_tears_down(tmp_path, model_spec):
    plan, loaded = write_plan(tmp_path, model_spec, cuts=[3], device=FAST)
    out = tmp_path / "out.pt"
    proc = subprocess.run(EDGEWISE + ["run", str(plan), "--testbed", "--inputs", "4", "--outputs", str(out), "--json"],
                          capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["time_dilation"] >= 1.0
    assert torch.allclose(torch.load(out, weights_only=True), expected(loaded, 4), atol=1e-5)
    assert netns.leftover_namespaces() == []


def test_worker_killed_inside_the_testbed_stops_the_run_and_cleans_up(tmp_path, model_spec):
    plan, _ = write_plan(tmp_path, model_spec, cuts=[3], device=FAST)
    driver = subprocess.Popen(EDGEWISE + ["run", str(plan), "--testbed", "--inputs", "100000"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    victim = wait_for_worker("edgewise-d1")
    time.sleep(3)
    subprocess.run(["kill", "-9", str(victim)])
    _, err = driver.communicate(timeout=180)
    assert driver.returncode == 2
    assert err.strip().splitlines()[-1].startswith("error: worker for device 'd1' (stage 1")
    assert netns.leftover_namespaces() == []


def test_ctrl_c_tears_the_testbed_down(tmp_path, model_spec):
    plan, _ = write_plan(tmp_path, model_spec, cuts=[3], device=FAST)
    driver = subprocess.Popen(EDGEWISE + ["run", str(plan), "--testbed", "--inputs", "100000"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_worker("edgewise-d0")
    driver.send_signal(signal.SIGINT)
    _, err = driver.communicate(timeout=120)
    assert driver.returncode == 130 and "interrupted" in err
    assert netns.leftover_namespaces() == []
