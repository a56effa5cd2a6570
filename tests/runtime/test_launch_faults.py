"""A worker that dies, hangs or is killed stops the whole run quickly, naming its device and stage.

The workers here are tiny Python scripts (no torch), so the tests take seconds.
"""
import os
import sys
import time

import pytest

from edgewise.errors import EdgewiseError
from edgewise.hardware.cluster import Cluster, Device, Node
from edgewise.plan.schema import Plan, Stage
from edgewise.runtime.launch import EVENT_PREFIX, Launch, run_workers

DEV = Device(name="pi", peak_flops_per_s={"float32": 1e10}, memory_bytes=1 << 30,
             mem_bandwidth_bytes_per_s=1e9)
PLAN = Plan(model="m", cluster=Cluster(name="c", nodes=[Node(name=f"dev{i}", device=DEV) for i in range(3)]),
            stages=[Stage(devices=["dev0"], ops=["a"]), Stage(devices=["dev1"], ops=["b"]),
                    Stage(devices=["dev2"], ops=["c"])])

STEP = f"print({EVENT_PREFIX!r} + '{{\"ev\": \"step\"}}', flush=True)"
HEALTHY = f"import time\nfor _ in range(3):\n    {STEP}\n    time.sleep(0.05)\n"
FOREVER = f"import time\n{STEP}\nwhile True:\n    {STEP}\n    time.sleep(0.2)\n"


def launch(scripts, hang_s=30.0, pids=None):
    def argv(seat):
        return [sys.executable, "-c", scripts[seat.rank]]
    return Launch(argv_for=argv, env_for=lambda seat: {}, hang_s=hang_s)


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_healthy_workers_finish():
    run_workers(PLAN, launch([HEALTHY] * 3))


def test_failing_worker_names_device_stage_and_error_and_stops_the_rest():
    boom = "import sys\nprint('ValueError: boom in stage', flush=True)\nsys.exit(3)\n"
    t = time.monotonic()
    with pytest.raises(EdgewiseError) as e:
        run_workers(PLAN, launch([FOREVER, boom, FOREVER]))
    msg = str(e.value)
    assert "'dev1'" in msg and "stage 1" in msg and "boom" in msg and "\n" not in msg
    assert time.monotonic() - t < 20


def test_killed_worker_is_reported_and_nothing_is_left_running(tmp_path):
    pidfile = tmp_path / "pids"
    record = f"import os\nopen({str(pidfile)!r}, 'a').write(str(os.getpid()) + '\\n')\n"
    suicide = record + "import os, signal, time\ntime.sleep(0.5)\nos.kill(os.getpid(), signal.SIGKILL)\n"
    with pytest.raises(EdgewiseError, match="dev2.*killed by signal SIGKILL"):
        run_workers(PLAN, launch([record + FOREVER, record + FOREVER, suicide]))
    pids = [int(p) for p in pidfile.read_text().split()]
    assert len(pids) == 3
    time.sleep(0.2)
    assert not any(alive(p) for p in pids)


def test_hung_worker_stops_the_run_within_the_hang_timeout():
    stop = f"import os, signal\n{STEP}\nos.kill(os.getpid(), signal.SIGSTOP)\n"
    t = time.monotonic()
    with pytest.raises(EdgewiseError, match=r"no progress for 2 s.*'dev1' \(stage 1"):
        run_workers(PLAN, launch([FOREVER.replace("while True", "for _ in range(2)") + "time.sleep(60)\n",
                                  stop, "import time\ntime.sleep(60)\n"], hang_s=2.0))
    assert time.monotonic() - t < 15
