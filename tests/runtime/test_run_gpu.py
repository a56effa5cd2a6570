"""`edgewise run --device cuda` on two GPUs of one host, activations over NCCL: a planned 2-stage
split gives the single-process model's outputs on the GPU, and a worker killed mid-run stops the
run in one line naming its device and stage. Needs 2 GPUs: `pytest -m gpu`."""
import os
import subprocess
import time

import pytest
import torch

from edgewise.runtime.inputs import random_input
from edgewise.zoo.spec import load_model

from .test_run_cli import EDGEWISE

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA GPUs")]


def plan_two_stages(tmp_path, spec):
    plan = tmp_path / "plan.json"
    proc = subprocess.run(EDGEWISE + ["plan", spec, "--cluster", "gpu-pair", "--planner", "even", "-o", str(plan)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return plan


def single_process_on_gpu(spec, n):
    loaded = load_model(spec)
    model = loaded.model.to("cuda:0")
    with torch.inference_mode():
        return torch.cat([model(*(x.to("cuda:0") for x in random_input(loaded.example_inputs, k)))
                          for k in range(n)]).cpu()


@pytest.mark.parametrize("spec", ["zoo:resnet18", "zoo:gpt2", "zoo:vit_b_16"])
def test_two_gpus_give_the_single_process_outputs(tmp_path, spec):
    plan = plan_two_stages(tmp_path, spec)
    out = tmp_path / "out.pt"
    proc = subprocess.run(EDGEWISE + ["run", str(plan), "--device", "cuda", "--inputs", "6", "--outputs", str(out),
                                      "--json"], capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr
    got, want = torch.load(out, weights_only=True), single_process_on_gpu(spec, 6)
    # both sides run the same kernels in float32, cuDNN convolutions in TF32 (PyTorch's default)
    rel = float((got - want).norm() / want.norm())
    torch.testing.assert_close(got, want, rtol=5e-3, atol=5e-3 * float(want.abs().max()),
                               msg=f"{spec}: relative error {rel:.2e}")


def children(pid):
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(entry))
            except (OSError, ValueError):
                pass
    return out


def rank_of(pid):
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = dict(v.split(b"=", 1) for v in f.read().split(b"\0") if b"=" in v)
        return int(env.get(b"RANK", b"-1"))
    except OSError:
        return -1


def running(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_killed_gpu_worker_stops_the_run_in_one_line(tmp_path):
    plan = plan_two_stages(tmp_path, "zoo:resnet18")
    driver = subprocess.Popen(EDGEWISE + ["run", str(plan), "--device", "cuda", "--inputs", "1000000",
                                          "--hang-timeout", "60"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    victim = None
    while victim is None and time.monotonic() < deadline:
        victim = next((p for p in children(driver.pid) if rank_of(p) == 1), None)
        time.sleep(0.2)
    assert victim is not None, "no worker of rank 1 appeared"
    workers = children(driver.pid)
    time.sleep(25)   # loading, export and NCCL set-up take seconds; then it streams for an hour
    assert driver.poll() is None, driver.communicate()
    killed_at = time.monotonic()
    os.kill(victim, 9)
    _, err = driver.communicate(timeout=120)
    assert time.monotonic() - killed_at < 60
    assert driver.returncode == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: worker for device 'gpu1' (stage 1"), err
    assert not any(running(p) for p in workers)
