"""`--device cuda` asked for where it cannot run says so in one line, before any process starts.

These run without a GPU (CUDA is hidden from the command), as CI does; the GPU runs themselves
are in test_run_gpu.py.
"""
import json
import os
import subprocess

import pytest
import torch

from edgewise.errors import EdgewiseError
from edgewise.hardware.cluster import Cluster, Node
from edgewise.plan.schema import Plan, Stage
from edgewise.runtime.topology import pairs
from edgewise.runtime.worker import check_device

from .test_run_cli import DEV, EDGEWISE, write_plan

NO_GPU = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}


def one_line_error(args, env=NO_GPU) -> str:
    proc = subprocess.run(EDGEWISE + args, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


@pytest.mark.parametrize("extra, match", [
    (["--device", "cuda"], "--device cuda: this machine has no CUDA GPU"),
    (["--device", "cuda", "--testbed"], "--device cuda with --testbed: the emulated fleet is CPUs"),
    (["--device", "tpu"], "--device 'tpu': use cpu or cuda"),
])
def test_run_on_a_device_it_cannot_use_fails_in_one_line(tmp_path, model_spec, extra, match):
    plan, _ = write_plan(tmp_path, model_spec, cuts=[3])
    assert match in one_line_error(["run", str(plan), "--inputs", "2", *extra])


def test_worker_without_cuda_fails_in_one_line(tmp_path, model_spec):
    plan, _ = write_plan(tmp_path, model_spec, cuts=[3])
    env = {**NO_GPU, "RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29123"}
    assert "no CUDA GPU" in one_line_error(["worker", str(plan), "--device", "cuda"], env)


def test_fewer_gpus_than_processes_on_this_host_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    check_device("cuda", 2)
    with pytest.raises(EdgewiseError, match="runs 3 processes on this host but it has 2 GPU"):
        check_device("cuda", 3)
    check_device("cpu", 64)


def test_printed_launch_carries_the_device(tmp_path, model_spec):
    plan, _ = write_plan(tmp_path, model_spec, cuts=[3])
    proc = subprocess.run(EDGEWISE + ["run", str(plan), "--print-launch", "--device", "cuda", "--json"],
                          env=NO_GPU, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr   # the GPUs are on the devices, not on this machine
    assert all(c["command"].endswith("--device cuda") for c in json.loads(proc.stdout))


def test_each_pair_of_ranks_that_exchanges_messages_is_listed_once():
    # stage 0 on d0, d1; stage 1 on d2; stage 2 on d3, d4, d5
    stages = [Stage(devices=["d0", "d1"], ops=["a"]), Stage(devices=["d2"], ops=["b"]),
              Stage(devices=["d3", "d4", "d5"], ops=["c"])]
    plan = Plan(model="m", cluster=Cluster(name="c", nodes=[Node(name=f"d{i}", device=DEV) for i in range(6)]),
                stages=stages)
    assert pairs(plan) == [(0, 1), (0, 2), (1, 2), (2, 3), (2, 4), (2, 5)]
