"""Building and tearing down the emulated fleet: namespaces, veth pairs, a bridge, tc, cgroups.

Topology: a hub namespace holds a bridge; each device namespace joins it with a veth pair
(`eth0` inside the device, `p<i>` on the hub). Point-to-point links are shaped at the
sender's `eth0` with an htb class per peer address. A shared medium is one ifb device in the
hub with a tbf at the medium's rate; every member's traffic to another member (when their
channel is that medium) is redirected into it at the hub port, so all members queue on the
same air time. netem is not available, so propagation latency is added by the sender
(runtime), not here.
"""
from __future__ import annotations

import fcntl
import json
import math
import os
import signal
import time
from dataclasses import asdict
from pathlib import Path

from edgewise.errors import EdgewiseError
from edgewise.files import write_atomic
from edgewise.hardware.cluster import Cluster
from edgewise.testbed import cgroups
from edgewise.testbed.commands import sh
from edgewise.testbed.layout import HUB, NETWORK, PREFIX, Layout

STATE = Path(os.environ.get("EDGEWISE_TESTBED_STATE", "/run/edgewise/testbed.json"))
LOCK = STATE.with_name("testbed.lock")
LOCK_WAIT_S = 900.0            # how long a second user of the host's testbed waits for the first
MIN_QUOTA_US = 1000            # the kernel's smallest cfs quota
MIN_PERIOD_US = 5000
FRAME_BYTES = 1514             # an Ethernet frame at the veth's 1500-byte MTU
PAYLOAD_BYTES = 1448           # of it, TCP's payload (less the IP, TCP and timestamp headers)
BURST_S = 0.001                # of a link's time: bursts up to this pass at once
GSO_MAX_BYTES = 65536          # the kernel's largest segmentation-offload packet (IPv4)


def cfs_period_us(quota_cores: float) -> int:
    """A short quota period, but no shorter than the kernel can enforce well.

    Within a period a process runs at the host's full speed until its quota is spent: long
    periods let short stages finish in one unthrottled burst, faster than the emulated device
    would. But below about 5 ms the kernel hands out less than the quota (measured here: a
    0.86-core quota gave 0.58 of a core at a 1.2 ms period, 0.86 at 5 ms and above), and the
    device's share of a period must be at least the kernel's minimum quota.
    """
    return max(MIN_PERIOD_US, math.ceil(MIN_QUOTA_US / quota_cores))


def up(cluster: Cluster, layout: Layout) -> Path:
    """Create the fleet (clearing any leftovers first); returns the state file describing it.

    This process holds the host's testbed from here until `down()` (or until it exits): a
    second edgewise process on the host waits for it rather than tearing it down mid-run.
    """
    _hold()
    try:
        _teardown()
        _make_network(layout)
        _shape_links(cluster, layout)
        _shape_media(cluster, layout)
        _limit_packets(cluster, layout)
        _make_cgroups(layout)
        state = {"cluster": cluster.model_dump(mode="json"), "layout": asdict(layout)}
        return write_atomic(STATE, json.dumps(state, indent=2))
    except BaseException:
        down()
        raise


def down() -> list[str]:
    """Remove every namespace and cgroup the testbed made (also leftovers of a crashed run)."""
    _hold()
    try:
        return _teardown()
    finally:
        _let_go()


def _teardown() -> list[str]:
    removed = []
    for ns in leftover_namespaces():
        for pid in sh("ip", "netns", "pids", ns, check=False).split():
            _kill(int(pid))
        sh("ip", "netns", "del", ns, check=False)
        removed.append(ns)
    if (cg := cgroups.host_hierarchy()) is not None:
        for sub, pids in cg.members():
            for pid in pids:
                _kill(pid)
            _rmdir(sub)
        for top in cg.tops:
            if top.is_dir():
                _rmdir(top)
    STATE.unlink(missing_ok=True)
    return removed


_held_fd: int | None = None


def _hold(wait_s: float = LOCK_WAIT_S) -> None:
    """Take the host's testbed lock (an flock, so a crashed holder never keeps it)."""
    global _held_fd
    if _held_fd is not None:
        return
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(fd)
                raise EdgewiseError(f"testbed: another edgewise process has held this host's testbed for "
                                    f"{wait_s:.0f} s; try again when it ends") from None
            time.sleep(0.2)
    _held_fd = fd


def _let_go() -> None:
    global _held_fd
    if _held_fd is not None:
        os.close(_held_fd)
        _held_fd = None


def leftover_namespaces() -> list[str]:
    return [line.split()[0] for line in sh("ip", "netns", "list", check=False).splitlines()
            if line.startswith(PREFIX)]


def launch_argv(layout: Layout, node: str, argv: list[str], throttled: bool = True) -> list[str]:
    """argv that runs `argv` inside `node`'s namespace, CPU quota and cpuset (without `throttled`:
    in its namespace only, behind its links but at the host's speed).

    Under a quota, OpenMP's workers must sleep rather than spin while they wait for work: a
    device of several threads spent its quota spinning between small ops (an m5 stage on two
    threads under a 1.385-core quota: 0.83 ms of CPU a step spinning, 0.27 sleeping)."""
    slot = layout.slot(node)
    if not throttled:
        return ["ip", "netns", "exec", slot.netns, *argv]
    files = _hierarchy().procs_files(slot.netns.removeprefix(PREFIX))
    enter = " && ".join([f"echo $$ > {f}" for f in files]
                        + [f"exec ip netns exec {slot.netns} env OMP_WAIT_POLICY=PASSIVE \"$@\""])
    return ["sh", "-c", enter, "sh", *argv]


def _make_network(layout: Layout) -> None:
    sh("ip", "netns", "add", HUB)
    sh("ip", "-n", HUB, "link", "add", "br0", "type", "bridge")
    sh("ip", "-n", HUB, "link", "set", "br0", "up")
    for i, slot in enumerate(layout.slots):
        sh("ip", "netns", "add", slot.netns)
        sh("ip", "link", "add", "eth0", "netns", slot.netns, "type", "veth",
           "peer", "name", f"p{i}", "netns", HUB)
        sh("ip", "-n", HUB, "link", "set", f"p{i}", "master", "br0")
        sh("ip", "-n", HUB, "link", "set", f"p{i}", "up")
        sh("ip", "-n", slot.netns, "addr", "add", f"{slot.address}/{NETWORK.prefixlen}", "dev", "eth0")
        sh("ip", "-n", slot.netns, "link", "set", "eth0", "up")
        sh("ip", "-n", slot.netns, "link", "set", "lo", "up")


def _wire_bytes_per_s(bytes_per_s: float, dilation: float) -> float:
    """A channel's bandwidth is what a transfer's payload gets (the planner charges payload
    bytes); tc counts whole frames, headers included."""
    return bytes_per_s / dilation * FRAME_BYTES / PAYLOAD_BYTES


def _burst_bytes(bytes_per_s: float, dilation: float) -> int:
    """The whole frames a real link would take BURST_S to carry (maybe none).

    A token bucket lets a burst through at once, and one packet more (the bucket may go into
    debt by a packet), so a message arrives up to that much early. With no burst at all, a
    20 kB message crossed an 8.2 Mbit/s link within 3% of its time; with a frame's burst, small
    messages arrived two frames' time early (3 ms of a 5 ms transfer).
    """
    return FRAME_BYTES * int(_wire_bytes_per_s(bytes_per_s, dilation) * BURST_S / FRAME_BYTES)


def _rate(bytes_per_s: float, dilation: float, least_burst: int = 1) -> tuple[str, str]:
    """tc rate and burst (tc takes a burst of 0 for none given, and picks one of a frame)."""
    return (f"{max(8, int(_wire_bytes_per_s(bytes_per_s, dilation) * 8))}bit",
            f"{max(least_burst, _burst_bytes(bytes_per_s, dilation))}b")


def _limit_packets(cluster: Cluster, layout: Layout) -> None:
    """No packet larger than a burst of the slowest channel its device sends on.

    With segmentation offload one send of up to 64 KB is one packet, and a token bucket lets
    a whole packet through once it has any tokens, debt and all: a 50 KB message crossed a
    7.8 Mbit/s link in 0.17 ms (51 ms with packets of one frame).
    """
    channels = [((ln.a, ln.b), ln.bandwidth_bytes_per_s) for ln in cluster.links]
    channels += [(tuple(m.members), m.bandwidth_bytes_per_s) for m in cluster.media]
    smallest: dict[str, int] = {}
    for nodes, bw in channels:
        size = max(FRAME_BYTES, _burst_bytes(bw, layout.dilation))
        for node in nodes:
            smallest[node] = min(smallest.get(node, GSO_MAX_BYTES), size)
    for node, size in smallest.items():
        sh("ip", "-n", layout.slot(node).netns, "link", "set", "eth0", "gso_max_size", str(size))


def _shape_links(cluster: Cluster, layout: Layout) -> None:
    ends: dict[str, list[tuple[str, float]]] = {}
    for link in cluster.links:
        ends.setdefault(link.a, []).append((link.b, link.bandwidth_bytes_per_s))
        ends.setdefault(link.b, []).append((link.a, link.bandwidth_bytes_per_s))
    for node, peers in ends.items():
        ns = layout.slot(node).netns
        sh("tc", "-n", ns, "qdisc", "add", "dev", "eth0", "root", "handle", "1:", "htb", "default", "1")
        sh("tc", "-n", ns, "class", "add", "dev", "eth0", "parent", "1:", "classid", "1:1",
           "htb", "rate", "10gbit")
        for k, (peer, bw) in enumerate(peers, start=10):
            rate, burst = _rate(bw, layout.dilation)
            sh("tc", "-n", ns, "class", "add", "dev", "eth0", "parent", "1:", "classid", f"1:{k}",
               "htb", "rate", rate, "ceil", rate, "burst", burst, "cburst", burst)
            sh("tc", "-n", ns, "filter", "add", "dev", "eth0", "parent", "1:", "protocol", "ip",
               "u32", "match", "ip", "dst", f"{layout.slot(peer).address}/32", "flowid", f"1:{k}")


def _shape_media(cluster: Cluster, layout: Layout) -> None:
    index = {s.node: i for i, s in enumerate(layout.slots)}
    for j, medium in enumerate(cluster.media):
        ifb = f"m{j}"
        # tbf drops a packet bigger than its bucket
        rate, burst = _rate(medium.bandwidth_bytes_per_s, layout.dilation, least_burst=FRAME_BYTES)
        sh("ip", "-n", HUB, "link", "add", ifb, "type", "ifb")
        sh("ip", "-n", HUB, "link", "set", ifb, "up")
        sh("tc", "-n", HUB, "qdisc", "add", "dev", ifb, "root", "tbf", "rate", rate,
           "burst", burst, "latency", "2s")
        for src in medium.members:
            port = f"p{index[src]}"
            peers = [d for d in medium.members
                     if d != src and (ch := cluster.channel(src, d)) is not None and ch.name == medium.name]
            if not peers:
                continue
            sh("tc", "-n", HUB, "qdisc", "replace", "dev", port, "handle", "ffff:", "ingress")
            for dst in peers:
                sh("tc", "-n", HUB, "filter", "add", "dev", port, "parent", "ffff:", "protocol", "ip",
                   "u32", "match", "ip", "dst", f"{layout.slot(dst).address}/32",
                   "action", "mirred", "egress", "redirect", "dev", ifb)


def _make_cgroups(layout: Layout) -> None:
    devices = []
    for slot in layout.slots:
        period = cfs_period_us(slot.cpu_quota_cores)
        devices.append(cgroups.DeviceCgroup(
            name=slot.netns.removeprefix(PREFIX), period_us=period, cpus=slot.cpus,
            quota_us=max(MIN_QUOTA_US, int(slot.cpu_quota_cores * period))))
    _hierarchy().make(devices)


def _hierarchy() -> cgroups.Hierarchy:
    if (cg := cgroups.host_hierarchy()) is None:
        raise EdgewiseError("testbed: this host offers no cpu and cpuset cgroup controllers")
    return cg


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _rmdir(path: Path, wait_s: float = 2.0) -> None:
    """Remove a cgroup; a task just killed keeps it busy while it exits, so retry for a moment
    (then give up: the next `down` retries)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            path.rmdir()
            return
        except OSError:
            if time.monotonic() >= deadline:
                return
            time.sleep(0.02)
