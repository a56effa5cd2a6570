"""The emulated fleet on this host: shaped links, a shared medium, and teardown that always runs.

Needs root (namespaces, tc, cgroups); skipped otherwise. Rates are checked against wide bounds:
the point is that shaping applies (unshaped veth moves GB/s), not its precision.
"""
import subprocess
import sys
import threading
import time

import pytest

from edgewise.hardware.cluster import Cluster, Device, Link, Medium, Node
from edgewise.testbed import cgroups, netns
from edgewise.testbed.commands import can_emulate
from edgewise.testbed.layout import plan_layout

pytestmark = pytest.mark.skipif(can_emulate() is not None, reason=str(can_emulate()))

PI = Device(name="pi", peak_flops_per_s={"float32": 1e10}, memory_bytes=1 << 30,
            mem_bandwidth_bytes_per_s=1e9)
LINK_BPS = 2.0e6
WIFI_BPS = 1.0e6

SERVER = """
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 5001)); s.listen(1); print("ready", flush=True)
c, _ = s.accept(); n = 0
while (d := c.recv(1 << 16)):
    n += len(d)
print(n, flush=True)
"""
CLIENT = "import socket, sys; s = socket.create_connection((sys.argv[1], 5001)); s.sendall(b'x' * int(sys.argv[2])); s.close()"
ACK_SERVER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 5001)); s.listen(1); print("ready", flush=True)
c, _ = s.accept()
for _ in range(2):
    n = int(sys.argv[1])
    while n > 0:
        n -= len(c.recv(n))
    c.sendall(b"k")
"""
TIMED_CLIENT = """
import socket, sys, time
s = socket.create_connection((sys.argv[1], 5001))
s.sendall(b"x" * int(sys.argv[2])); s.recv(1)   # past TCP's slow start, which paces a new connection
time.sleep(0.5)                                # the link idle again, its bucket full
t = time.perf_counter(); s.sendall(b"x" * int(sys.argv[2])); s.recv(1)
print(time.perf_counter() - t)
"""


@pytest.fixture
def fleet():
    c = Cluster(name="t", nodes=[Node(name=n, device=PI) for n in "abcd"],
                links=[Link(a="a", b="b", bandwidth_bytes_per_s=LINK_BPS)],
                media=[Medium(name="wifi", members=list("abcd"), bandwidth_bytes_per_s=WIFI_BPS)])
    lay = plan_layout(c, host_core_flops=1e11, host_cores=2)
    netns.up(c, lay)
    yield c, lay
    netns.down()


def transfers(lay, pairs, nbytes):
    """Start one receiver per pair, send `nbytes` over each pair at once; seconds each took."""
    servers = []
    for _, dst in pairs:
        p = subprocess.Popen(netns.launch_argv(lay, dst, [sys.executable, "-c", SERVER]),
                             stdout=subprocess.PIPE, text=True)
        assert p.stdout.readline().strip() == "ready"
        servers.append(p)
    took = [0.0] * len(pairs)

    def send(i, src, dst):
        t = time.perf_counter()
        subprocess.run(netns.launch_argv(lay, src, [sys.executable, "-c", CLIENT,
                                                    lay.slot(dst).address, str(nbytes)]), check=True)
        servers[i].wait(timeout=60)
        took[i] = time.perf_counter() - t

    threads = [threading.Thread(target=send, args=(i, s, d)) for i, (s, d) in enumerate(pairs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for p in servers:
        assert int(p.stdout.read().split()[-1]) == nbytes  # nothing lost on the way
    return took


def test_link_and_medium_are_shaped(fleet):
    _, lay = fleet
    nbytes = 2_000_000
    (link_s,) = transfers(lay, [("a", "b")], nbytes)
    (wifi_s,) = transfers(lay, [("c", "d")], nbytes)
    assert nbytes / link_s < 1.5 * LINK_BPS
    assert nbytes / wifi_s < 1.5 * WIFI_BPS
    assert wifi_s > link_s  # the direct link beats the slower shared medium for a-b


def test_one_message_takes_its_time_on_the_link(fleet):
    # Bursts (and segmentation-offload packets, up to 64 KB) pass a token bucket at once: a
    # message the link carries in 25 ms must still take about that long.
    _, lay = fleet
    nbytes = 50_000
    server = subprocess.Popen(netns.launch_argv(lay, "b", [sys.executable, "-c", ACK_SERVER, str(nbytes)]),
                              stdout=subprocess.PIPE, text=True)
    assert server.stdout.readline().strip() == "ready"
    took = float(subprocess.run(netns.launch_argv(lay, "a", [sys.executable, "-c", TIMED_CLIENT,
                                                             lay.slot("b").address, str(nbytes)]),
                                check=True, capture_output=True, text=True).stdout)
    server.wait(timeout=60)
    assert took > 0.8 * nbytes / (LINK_BPS / lay.dilation)   # 0.65 of it with 32 KB bursts


def test_medium_is_shared_by_concurrent_senders(fleet):
    _, lay = fleet
    nbytes = 1_000_000
    took = transfers(lay, [("a", "c"), ("b", "d")], nbytes)
    # two senders on one channel: together they cannot beat its rate
    assert 2 * nbytes / max(took) < 1.5 * WIFI_BPS


def test_down_kills_what_runs_inside_and_removes_everything(fleet):
    _, lay = fleet
    stray = subprocess.Popen(netns.launch_argv(lay, "a", [sys.executable, "-c", "import time; time.sleep(600)"]))
    time.sleep(0.3)
    removed = netns.down()
    assert "edgewise-hub" in removed
    assert stray.wait(timeout=10) != 0
    assert netns.leftover_namespaces() == []
    assert not any(top.exists() for top in cgroups.host_hierarchy().tops)


def test_second_up_clears_leftovers(fleet):
    c, lay = fleet
    netns.up(c, lay)   # as after a crash that skipped `down`
    assert sorted(netns.leftover_namespaces()) == sorted(["edgewise-hub"] + [s.netns for s in lay.slots])


def test_unthrottled_launch_is_behind_the_links_but_outside_the_quota(fleet):
    _, lay = fleet
    show = [sys.executable, "-c", "import os, socket, sys; print(open('/proc/self/cgroup').read()); "
            "print('omp', os.environ.get('OMP_WAIT_POLICY')); "
            "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.connect(('198.18.0.2', 9)); print(s.getsockname()[0])"]
    throttled = subprocess.run(netns.launch_argv(lay, "a", show), capture_output=True, text=True, check=True).stdout
    free = subprocess.run(netns.launch_argv(lay, "a", show, throttled=False), capture_output=True, text=True, check=True).stdout
    address = lay.slot("a").address
    assert throttled.split()[-1] == free.split()[-1] == address
    assert "edgewise/" in throttled and "edgewise/" not in free
    assert "omp PASSIVE" in throttled      # under the quota, OpenMP's workers must not spin it away
    # and teardown still finds it, by its namespace
    stray = subprocess.Popen(netns.launch_argv(lay, "b", [sys.executable, "-c", "import time; time.sleep(600)"], throttled=False))
    time.sleep(0.3)
    netns.down()
    assert stray.wait(timeout=10) != 0
